# nomad-metrics in --server mode as a Nomad service job: one instance for the
# whole cluster, counting jobs by status (pending / running / complete / dead),
# nodes and capacity across all namespaces and sending them to DogStatsD.
#
#   nomad job run \
#     -var 'image=registry.example.com/nomad-metrics:0.2.0' \
#     -var 'statsd_host=10.0.0.5' \
#     deploy/nomad/nomad-metrics-server.nomad.hcl
#
# Run exactly one: two instances would send the same cluster-wide gauges twice
# (harmless for gauges, but twice the load on the Nomad servers).
#
# Needs Nomad 1.5+ (the Task API and workload identities) with the docker
# driver. On a cluster with ACLs, attach the policy in
# nomad-metrics-server.policy.hcl to this job once (see docs/deploy.md,
# "Nomad jobs"):
#
#   nomad acl policy apply -namespace default -job nomad-metrics-server \
#     -description "nomad-metrics --server" \
#     nomad-metrics-server deploy/nomad/nomad-metrics-server.policy.hcl
#
# Nomad 1.0 to 1.4: remove the identity and service blocks and use the
# node-address NOMAD_ADDR (see the comments there).

variable "image" {
  type        = string
  description = "nomad-metrics image reference (tag or digest)"
  default     = "nomad-metrics:0.2.0"
}

variable "statsd_host" {
  type        = string
  description = "DogStatsD host (name or IP) that receives the gauges"
}

variable "statsd_port" {
  type        = number
  description = "DogStatsD UDP port"
  default     = 8125
}

variable "datacenters" {
  type        = list(string)
  description = "Datacenters to run in; globs need Nomad 1.5+, older versions need the names"
  default     = ["*"]
}

job "nomad-metrics-server" {
  type        = "service"
  datacenters = var.datacenters

  # The image is a static linux/amd64 binary.
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  constraint {
    attribute = "${attr.cpu.arch}"
    value     = "amd64"
  }

  group "nomad-metrics" {
    count = 1

    # A port on the node for GET /healthz (the service check below).
    network {
      port "health" {}
    }

    # Restart after a failing check (check_restart below) or an exit, but never
    # give up: a failed allocation would need the servers to reschedule it,
    # and the servers being unreachable is exactly what this task reports.
    restart {
      attempts = 3
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    task "nomad-metrics" {
      driver = "docker"

      config {
        image = var.image
        args = [
          "start", "--server",
          # 200 while polls succeed (or for the first 3 intervals), else 503.
          "--health-listen=${NOMAD_ADDR_health}",
        ]
        network_mode = "host"

        readonly_rootfs = true
        cap_drop        = ["all"]
        security_opt    = ["no-new-privileges"]
      }

      # The task's workload identity as NOMAD_TOKEN. Required: the Task API
      # rejects requests without a token even where ACLs are disabled. With
      # ACLs it carries the policies attached to this job. Nomad < 1.5: remove.
      identity {
        env = true
      }

      env {
        # The local client agent's Task API socket. The client agent forwards
        # /v1/jobs, /v1/nodes, /v1/allocations and /v1/status/leader (blocking
        # queries included) to the servers. Nomad 1.10.3+ also sets this value
        # as NOMAD_UNIX_ADDR.
        NOMAD_ADDR = "unix://${NOMAD_SECRETS_DIR}/api.sock"

        # Without the Task API (Nomad < 1.5): the local agent's HTTP port, or
        # any agent or a load balancer in front of the servers; see the client
        # job file for the advertise-address and TLS variants.
        # NOMAD_ADDR = "http://${attr.unique.network.ip-address}:4646"

        # Nomad sets NOMAD_NAMESPACE to this job's own namespace in every task,
        # and nomad-metrics (like the nomad CLI) would then count that
        # namespace only. "*" restores the cluster-wide count.
        NOMAD_NAMESPACE = "*"

        DD_AGENT_HOST     = var.statsd_host
        DD_DOGSTATSD_PORT = var.statsd_port
        RUST_LOG          = "info"
      }

      # Nomad's own service discovery (Nomad 1.4+, no Consul): the client agent
      # calls /healthz every 30 s. After 10 failures in a row (5 minutes with
      # no successful poll) it restarts the task; a restart cannot fix Nomad,
      # so the limit is long. Alert on poll_failure, not on this check.
      service {
        provider = "nomad"
        name     = "nomad-metrics-server"
        port     = "health"

        check {
          name     = "healthz"
          type     = "http"
          path     = "/healthz"
          interval = "30s"
          timeout  = "5s"

          check_restart {
            limit = 10
            grace = "60s"
          }
        }
      }

      # Measured (docs/deploy.md, "Resources"): with 100,000 jobs (a 68 MB job
      # list), 1,000 nodes and 20,000 allocations, peak resident memory is
      # 6.5 MB (the lists are parsed as streams) and a full download takes about
      # 0.5 s of one core. Blocking queries skip unchanged lists; when they all
      # change all the time it averages about 6% of a core, about 150 MHz on a
      # 2.5 GHz host.
      resources {
        cpu    = 200 # MHz
        memory = 64  # MB
      }

      logs {
        max_files     = 2
        max_file_size = 5 # MB
      }
    }
  }
}
