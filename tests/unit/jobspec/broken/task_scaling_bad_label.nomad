job "web" {
  group "g" {
    task "t" {
      scaling "disk" {
        max = 10
      }
    }
  }
}
