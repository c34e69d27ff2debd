job "web" {
  datacenters = [shout("dc1")]
}
