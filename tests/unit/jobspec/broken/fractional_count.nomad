job "web" {
  group "g" {
    count = 1.5
  }
}
