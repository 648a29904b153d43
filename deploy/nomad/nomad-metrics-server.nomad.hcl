# nomad-metrics in --server mode as a Nomad service job: one instance for the
# whole cluster, counting jobs by status (pending / running / complete / dead)
# across all namespaces and sending the counts to DogStatsD.
#
#   nomad job run \
#     -var 'image=registry.example.com/nomad-metrics:0.2.0' \
#     -var 'statsd_host=10.0.0.5' \
#     deploy/nomad/nomad-metrics-server.nomad.hcl
#
# Run exactly one: two instances would send the same cluster-wide gauges twice
# (harmless for gauges, but twice the load on the Nomad servers).
#
# Needs Nomad 1.0+ (HCL2 job files, the docker driver). On a cluster with ACLs,
# attach the policy in nomad-metrics-server.policy.hcl to this job once (Nomad
# 1.5+, see docs/deploy.md, "Nomad jobs"):
#
#   nomad acl policy apply -namespace default -job nomad-metrics-server \
#     -description "nomad-metrics --server" \
#     nomad-metrics-server deploy/nomad/nomad-metrics-server.policy.hcl

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

    task "nomad-metrics" {
      driver = "docker"

      config {
        image        = var.image
        args         = ["start", "--server"]
        network_mode = "host"

        readonly_rootfs = true
        cap_drop        = ["all"]
        security_opt    = ["no-new-privileges"]
      }

      # Nomad 1.5+ with ACLs: this task's workload identity becomes NOMAD_TOKEN
      # and carries the policies attached to this job. Remove on Nomad < 1.5.
      identity {
        env = true
      }

      env {
        # The local client agent, which forwards /v1/jobs to the servers. Any
        # agent (or a load balancer in front of the servers) works; see the
        # client job file for the advertise-address and TLS variants.
        NOMAD_ADDR = "http://${attr.unique.network.ip-address}:4646"

        # Nomad sets NOMAD_NAMESPACE to this job's own namespace in every task,
        # and nomad-metrics (like the nomad CLI) would then count that
        # namespace only. "*" restores the cluster-wide count.
        NOMAD_NAMESPACE = "*"

        DD_AGENT_HOST     = var.statsd_host
        DD_DOGSTATSD_PORT = var.statsd_port
        RUST_LOG          = "info"
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
