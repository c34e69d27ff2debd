job "web" {
  group "g" {
    count = 
  }
}
