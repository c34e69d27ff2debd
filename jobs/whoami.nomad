# whoami on every node: the demo service behind fabio at /whoami, and the quickest check that routing works.
#
# Hazards this file handles:
# - It registers in Consul with the tag fabio reads, `urlprefix-/whoami strip=/whoami`, so fabio strips the prefix
#   before forwarding; it comes in the wave after fabio, so its routes have somewhere to appear.
# - A health check on /health keeps a broken instance out of fabio's table and fails a bad rollout, which
#   `auto_revert` then undoes.

variable "datacenters" {
  description = "Datacenters whoami may run in."
  type        = list(string)
  default     = ["dc1"]
}

variable "whoami_image" {
  description = "whoami image: a multi-arch manifest covering linux/amd64 and linux/arm64."
  type        = string
  default     = "docker.io/traefik/whoami:v1.10.4"
}

job "whoami" {
  datacenters = var.datacenters
  type        = "service"

  meta = {
    "nomad-operator.wave" = "3"
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
    healthy_deadline  = "2m"
    progress_deadline = "5m"
    auto_revert       = true
  }

  group "whoami" {
    count = 3

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        to = 8080
      }
    }

    service {
      name     = "whoami"
      provider = "consul"
      port     = "http"
      tags     = ["urlprefix-/whoami strip=/whoami"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "whoami" {
      driver = "docker"

      config {
        image = var.whoami_image
        args  = ["--port", "8080"]
        ports = ["http"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
