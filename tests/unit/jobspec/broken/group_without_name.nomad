job "web" {
  group {
  }
}
