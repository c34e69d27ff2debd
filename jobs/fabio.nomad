# Fabio on every node: the HTTP entry point that routes by the `urlprefix-` tags services carry in Consul.
#
# Hazards this file handles:
# - Fabio reads its routes from Consul, so it runs in a wave after Consul; without Consul it keeps its last table.
# - Each node runs one instance on the same static port (9999), so any node, and the fabio address that ansible puts
#   on every node's loopback device, reaches the whole cluster; losing a node loses one entry point, not the routes.
# - Nomad registers fabio's service with a health check; fabio's own registration is turned off so Consul does not
#   hold two entries for one process.

variable "datacenters" {
  description = "Datacenters fabio may run in."
  type        = list(string)
  default     = ["dc1"]
}

variable "fabio_image" {
  description = "Fabio image: a multi-arch manifest covering linux/amd64 and linux/arm64."
  type        = string
  default     = "docker.io/fabiolb/fabio:1.6.4"
}

job "fabio" {
  datacenters = var.datacenters
  type        = "service"

  meta = {
    "nomad-operator.wave" = "2"
  }

  constraint {
    attribute = "${attr.cpu.arch}"
    operator  = "regexp"
    value     = "^(amd64|arm64)$"
  }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "fabio" {
    count = 3

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      mode = "host"

      port "lb" {
        static = 9999
      }
      port "ui" {
        static = 9998
      }
    }

    service {
      name     = "fabio"
      provider = "consul"
      port     = "lb"
      tags     = ["fabio"]

      check {
        name     = "fabio health"
        type     = "http"
        port     = "ui"
        path     = "/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "fabio" {
      driver = "docker"

      config {
        image = var.fabio_image
        # Host networking: fabio must listen on the loopback fabio address as well as the node's own.
        network_mode = "host"
        args         = ["-cfg", "/local/fabio.properties"]
      }

      template {
        destination = "local/fabio.properties"
        change_mode = "restart"
        data        = <<-EOT
          registry.backend = consul
          registry.consul.addr = {{ env "attr.unique.network.ip-address" }}:8500
          registry.consul.register.enabled = false
          proxy.addr = :{{ env "NOMAD_PORT_lb" }}
          ui.addr = :{{ env "NOMAD_PORT_ui" }}
          proxy.strategy = rr
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
