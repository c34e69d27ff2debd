job "web" {
  constraint {
    attribute = "${attr.kernel.name}"
    equals    = "linux"
  }
}
