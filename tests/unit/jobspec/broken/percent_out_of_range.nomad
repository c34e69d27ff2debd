job "web" {
  spread {
    attribute = "${node.datacenter}"
    target "dc1" {
      percent = 300
    }
  }
}
