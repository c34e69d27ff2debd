# Consul servers, one on each node: the service catalog that fabio routes from and that Nomad registers services in.
#
# Hazards this file handles:
# - No IP address is written here. Consul finds its peers through Nomad's own service discovery: each server registers
#   its LAN serf port as the Nomad service "consul-serf", a template lists those addresses for `retry_join`, and when
#   the list changes (a server moved or a node came back) a change script runs `consul join` instead of restarting
#   every server at once, which could cost the quorum.
# - Consul's own services use the "nomad" provider: they cannot depend on the Consul they are starting.
# - Raft data lives in the node's "consul" host volume, so a server that restarts keeps its identity; that is also why
#   this job opts out of rebalancing (a server moved to another node would start with an empty data dir).
# - Rolling updates replace one server at a time and wait for it to be healthy, so two of three always vote.

variable "datacenters" {
  description = "Datacenters the servers may run in."
  type        = list(string)
  default     = ["dc1"]
}

variable "consul_image" {
  description = "Consul image; the official one is published for linux/amd64 and linux/arm64."
  type        = string
  default     = "docker.io/hashicorp/consul:1.20.6"
}

variable "consul_datacenter" {
  description = "Consul's datacenter name."
  type        = string
  default     = "dc1"
}

job "consul" {
  datacenters = var.datacenters
  type        = "service"

  meta = {
    "nomad-operator.wave"      = "1"
    "nomad-operator.rebalance" = "false"
  }

  # The image has manifests for these two architectures only; a 32-bit Raspberry Pi OS node reports "arm".
  constraint {
    attribute = "${attr.cpu.arch}"
    operator  = "regexp"
    value     = "^(amd64|arm64)$"
  }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "30s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
    stagger           = "30s"
  }

  group "consul" {
    count = 3

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    # Consul's ports are fixed by its protocol; host networking gives each server the node's own address.
    network {
      mode = "host"

      port "dns" {
        static = 8600
      }
      port "http" {
        static = 8500
      }
      port "grpc" {
        static = 8502
      }
      port "server_rpc" {
        static = 8300
      }
      port "serf_lan" {
        static = 8301
      }
      port "serf_wan" {
        static = 8302
      }
    }

    volume "consul" {
      type      = "host"
      source    = "consul"
      read_only = false
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    service {
      name     = "consul-serf"
      provider = "nomad"
      port     = "serf_lan"

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "3s"
      }
    }

    service {
      name     = "consul-http"
      provider = "nomad"
      port     = "http"

      # A server without a leader is not healthy: the check fails until the cluster has formed.
      check {
        type     = "http"
        path     = "/v1/status/leader"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "consul" {
      driver = "docker"

      config {
        image = var.consul_image
        # Gossip needs the node's real address; with host networking the ports above are reserved, not mapped.
        network_mode = "host"
        # The node id must not come from the host: containers share it, and Consul would see three servers as one.
        args = ["agent", "-config-dir=/local/config", "-disable-host-node-id"]
      }

      volume_mount {
        volume      = "consul"
        destination = "/consul/data"
        read_only   = false
      }

      template {
        destination = "local/config/consul.hcl"
        # The peer list is read at start only; later changes go through the join script below.
        change_mode = "noop"
        data        = <<-EOT
          datacenter       = "${var.consul_datacenter}"
          data_dir         = "/consul/data"
          server           = true
          bootstrap_expect = 3
          client_addr      = "0.0.0.0"
          bind_addr        = "{{ env "attr.unique.network.ip-address" }}"
          advertise_addr   = "{{ env "attr.unique.network.ip-address" }}"
          retry_join       = [{{ range $i, $s := nomadService "consul-serf" }}{{ if $i }}, {{ end }}"{{ $s.Address }}:{{ $s.Port }}"{{ end }}]
          ui_config {
            enabled = true
          }
        EOT
      }

      template {
        destination = "local/consul-peers"
        change_mode = "script"
        data        = <<-EOT
          {{ range nomadService "consul-serf" }}{{ .Address }}:{{ .Port }}
          {{ end }}
        EOT

        change_script {
          command       = "/bin/sh"
          args          = ["-c", "consul join $(cat /local/consul-peers)"]
          timeout       = "20s"
          fail_on_error = false
        }

        # Batch the burst of registrations when several servers start together.
        wait {
          min = "5s"
          max = "30s"
        }
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
