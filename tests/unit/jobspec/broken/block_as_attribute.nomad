job "web" {
  group "g" {
    task "t" {
      resources = { cpu = 100 }
    }
  }
}
