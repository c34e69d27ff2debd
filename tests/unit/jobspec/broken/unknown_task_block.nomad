job "web" {
  group "g" {
    task "t" {
      driver = "docker"
      resourcez {
        cpu = 100
      }
    }
  }
}
