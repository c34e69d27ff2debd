job "web" {
  group "g" {
    task "t" {
      lifecycle {
        sidecar = true
      }
    }
  }
}
