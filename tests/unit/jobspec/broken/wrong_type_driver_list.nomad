job "web" {
  group "g" {
    task "t" {
      driver = ["docker"]
    }
  }
}
