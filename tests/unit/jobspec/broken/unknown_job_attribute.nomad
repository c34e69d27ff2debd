job "web" {
  datacenters = ["dc1"]
  colour      = "blue"
}
