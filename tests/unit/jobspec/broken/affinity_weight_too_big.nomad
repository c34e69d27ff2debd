job "web" {
  affinity {
    attribute = "${node.class}"
    value     = "fast"
    weight    = 500
  }
}
