job "web" {
  all_at_once = "yes"
}
