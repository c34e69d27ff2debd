# The operator itself, run by Nomad: two replicas that keep this repository's jobs in sync with the cluster.
#
# Hazards this file handles:
# - Availability: two instances on distinct hosts, so unplugging a node leaves one running. Only the holder of the
#   Nomad Variable lock `nomad-operator/leader` writes; the other waits, ready, and takes over within the lock TTL.
# - Secrets never live in git or in this file. Repository URL, git credentials and the webhook secret come from this
#   job's own Nomad Variable `nomad/jobs/nomad-operator` (the job's workload identity may read it without any ACL
#   rule), rendered by templates into an env file and into files in the secrets dir, which only this task can read.
#   Ansible writes that variable once, at bootstrap (ansible/roles/operator).
# - The Nomad token. Chosen: the task's workload identity, written to secrets/nomad_token, with the policy in
#   jobs/acl/nomad-operator.policy.hcl attached to this job (`nomad acl policy apply -namespace default
#   -job nomad-operator ...`). Nothing long-lived is stored anywhere, nothing needs rotating, and the token dies with
#   the allocation. For clusters that predate workload-associated policies (Nomad < 1.7), a `nomad_token` item in the
#   same variable takes precedence and is written to secrets/nomad-token instead. The operator reads the token from
#   NOMAD_TOKEN_FILE and re-reads it when the file changes. Without ACLs the token is simply not checked.
# - Wave: the operator is the last wave (4). Its service lives in Consul (fabio routes the webhooks from there), so
#   its health checks only pass once Consul (wave 1) runs; as wave 0 a fresh cluster would deadlock, the operator
#   waiting for its own health before it ever applied Consul. Last also means that a commit changing both an app and
#   the operator is applied by the running, known-good operator first; the new version then takes over. Keep it the
#   highest wave in the repository.
# - Rollouts: one replica at a time, healthy on /readyz before the next, `auto_revert` on failure; the lock moves to
#   the surviving replica while the other restarts, and `shutdown_delay` takes a replica out of fabio before it stops.

variable "datacenters" {
  description = "Datacenters the operator may run in."
  type        = list(string)
  default     = ["dc1"]
}

variable "operator_image" {
  description = "The operator's image (built from the Containerfile, multi-arch: linux/amd64 and linux/arm64)."
  type        = string
  default     = "ghcr.io/nomad-operator/nomad-operator"
}

variable "operator_image_tag" {
  description = "The image tag to run; pin a release, never a moving tag, so that git says exactly what runs."
  type        = string
  default     = "0.1.0"
}

variable "nomad_scheme" {
  description = "How the operator reaches the Nomad agent on its node: http, or https when the cluster has TLS."
  type        = string
  default     = "http"
}

job "nomad-operator" {
  datacenters = var.datacenters
  type        = "service"

  meta = {
    "nomad-operator.wave" = "4"
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

  group "operator" {
    count = 2

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        to = 8080
      }
    }

    # Leave fabio's table before the process stops, so no webhook lands on a replica that is going away.
    shutdown_delay = "5s"

    restart {
      attempts = 10
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    service {
      name     = "nomad-operator"
      provider = "consul"
      port     = "http"
      # fabio forwards https://<any node or the fabio address>:9999/hooks/<source> to a ready replica.
      tags = ["urlprefix-/hooks/"]

      # /readyz answers 200 on each replica that reaches Nomad with its caches synced, leader or standby, so that a
      # standby counts as healthy in deployments and can take webhooks (it hands them to the sync queue like the leader).
      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"

        check_restart {
          limit = 6
          grace = "60s"
        }
      }
    }

    task "operator" {
      driver = "docker"

      config {
        image = "${var.operator_image}:${var.operator_image_tag}"
        args  = ["run"]
        ports = ["http"]
      }

      # The default workload identity, as a file: see the header for why this is the token.
      identity {
        file        = true
        change_mode = "noop"
      }

      env {
        NOMAD_ADDR            = "${var.nomad_scheme}://${attr.unique.network.ip-address}:4646"
        NOMAD_OPERATOR_LISTEN = "0.0.0.0:8080"
      }

      # Settings: fails to render (and the task waits) until the bootstrap has written the variable.
      template {
        destination = "secrets/operator.env"
        env         = true
        change_mode = "restart"
        perms       = "0400"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/nomad-operator" -}}
          NOMAD_OPERATOR_REPO={{ .repo_url }}
          NOMAD_OPERATOR_REF={{ if .ref }}{{ .ref }}{{ else }}main{{ end }}
          NOMAD_OPERATOR_PATH={{ if .path }}{{ .path }}{{ else }}jobs/*.nomad{{ end }}
          NOMAD_OPERATOR_NAME={{ if .name }}{{ .name }}{{ else }}default{{ end }}
          NOMAD_OPERATOR_PRUNE={{ if .prune }}{{ .prune }}{{ else }}false{{ end }}
          NOMAD_OPERATOR_WEBHOOK_SECRET_FILE={{ env "NOMAD_SECRETS_DIR" }}/webhook-secret
          {{ if .git_token }}NOMAD_OPERATOR_GIT_TOKEN_FILE={{ env "NOMAD_SECRETS_DIR" }}/git-token{{ end }}
          {{ if .git_ssh_key }}NOMAD_OPERATOR_GIT_SSH_KEY_FILE={{ env "NOMAD_SECRETS_DIR" }}/git-ssh-key{{ end }}
          {{ if .git_known_hosts }}NOMAD_OPERATOR_GIT_KNOWN_HOSTS_FILE={{ env "NOMAD_SECRETS_DIR" }}/git-known-hosts{{ end }}
          {{ if .nomad_ca_cert }}NOMAD_CACERT={{ env "NOMAD_SECRETS_DIR" }}/nomad-ca.pem{{ end }}
          NOMAD_TOKEN_FILE={{ env "NOMAD_SECRETS_DIR" }}/{{ if .nomad_token }}nomad-token{{ else }}nomad_token{{ end }}
          {{- end }}
        EOT
      }

      # Secret files: the operator re-reads them when they change, so a rotation needs no restart.
      template {
        destination = "secrets/webhook-secret"
        change_mode = "noop"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/nomad-operator\" }}{{ .webhook_secret }}{{ end }}"
      }

      template {
        destination = "secrets/git-token"
        change_mode = "noop"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/nomad-operator\" }}{{ if .git_token }}{{ .git_token }}{{ end }}{{ end }}"
      }

      template {
        destination = "secrets/git-ssh-key"
        change_mode = "noop"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/nomad-operator\" }}{{ if .git_ssh_key }}{{ .git_ssh_key }}{{ end }}{{ end }}"
      }

      template {
        destination = "secrets/git-known-hosts"
        change_mode = "noop"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/nomad-operator\" }}{{ if .git_known_hosts }}{{ .git_known_hosts }}{{ end }}{{ end }}"
      }

      template {
        destination = "secrets/nomad-ca.pem"
        change_mode = "restart"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/nomad-operator\" }}{{ if .nomad_ca_cert }}{{ .nomad_ca_cert }}{{ end }}{{ end }}"
      }

      template {
        destination = "secrets/nomad-token"
        change_mode = "noop"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/nomad-operator\" }}{{ if .nomad_token }}{{ .nomad_token }}{{ end }}{{ end }}"
      }

      # Room to release the leader lock and finish an in-flight write before Nomad kills the process.
      kill_timeout = "20s"

      resources {
        cpu        = 200
        memory     = 192
        memory_max = 384
      }
    }
  }
}
