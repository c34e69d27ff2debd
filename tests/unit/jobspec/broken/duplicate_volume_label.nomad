job "web" {
  group "g" {
    volume "data" {
      type = "host"
    }
    volume "data" {
      type = "csi"
    }
  }
}
