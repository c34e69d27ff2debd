job "web" {
  group "g" {
    cuont = 3
  }
}
