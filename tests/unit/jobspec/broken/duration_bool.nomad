job "web" {
  update {
    stagger = true
  }
}
