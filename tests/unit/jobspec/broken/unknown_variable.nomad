job "web" {
  datacenters = [var.dc]
}
