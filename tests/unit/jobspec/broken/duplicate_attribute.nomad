job "web" {
  type = "service"
  type = "batch"
}
