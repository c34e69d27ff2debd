job "web" {
  update {
    healthy_deadline = "1d"
  }
}
