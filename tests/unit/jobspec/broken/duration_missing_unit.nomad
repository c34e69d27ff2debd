job "web" {
  update {
    min_healthy_time = "10"
  }
}
