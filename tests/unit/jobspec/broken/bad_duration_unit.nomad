job "web" {
  group "g" {
    task "t" {
      kill_timeout = "10x"
    }
  }
}
