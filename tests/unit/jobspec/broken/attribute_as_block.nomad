job "web" {
  group "g" {
    task "t" {
      driver {
        name = "docker"
      }
    }
  }
}
