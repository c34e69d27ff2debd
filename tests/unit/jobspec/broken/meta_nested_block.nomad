job "web" {
  meta {
    owner {
      name = "me"
    }
  }
}
