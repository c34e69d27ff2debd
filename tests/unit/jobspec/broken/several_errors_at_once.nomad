job "web" {
  priority = "high"
  group "g" {
    count = []
    task "t" {
      driver  = "docker"
      colour  = "red"
    }
  }
}
