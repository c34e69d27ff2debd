job "web" {
  meta {
    owners = ["a", "b"]
  }
}
