job "web" {
  group "g" {
    scaling {
      min = 1
    }
  }
}
