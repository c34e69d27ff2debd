job "web" {
  group "g" {
    task "t" {
      template {
        data        = file("../../../../../etc/hostname")
        destination = "local/x"
      }
    }
  }
}
