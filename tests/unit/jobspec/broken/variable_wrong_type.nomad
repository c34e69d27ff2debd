variable "replicas" {
  type    = number
  default = "many"
}

job "web" {
  group "g" {
    count = var.replicas
  }
}
