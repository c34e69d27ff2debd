job "web" {
  update "fast" {
    max_parallel = 2
  }
}
