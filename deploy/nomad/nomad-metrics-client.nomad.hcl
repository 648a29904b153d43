# nomad-metrics in --client mode as a Nomad system job: one instance on every
# client node, each polling its own local agent and reporting that node's
# resources (total / used / available) to DogStatsD.
#
#   nomad job run \
#     -var 'image=registry.example.com/nomad-metrics:0.2.0' \
#     -var 'statsd_host=10.0.0.5' \
#     deploy/nomad/nomad-metrics-client.nomad.hcl
#
# Needs Nomad 1.0+ (HCL2 job files, the docker driver). On a cluster with ACLs,
# attach the policy in nomad-metrics-client.policy.hcl to this job once (Nomad
# 1.5+, see docs/deploy.md, "Nomad jobs"):
#
#   nomad acl policy apply -namespace default -job nomad-metrics-client \
#     -description "nomad-metrics --client" \
#     nomad-metrics-client deploy/nomad/nomad-metrics-client.policy.hcl
#
# How the task reaches its agent: through the node's address on the host
# network (see NOMAD_ADDR below). Nomad 1.5+ also offers the Task API, a unix
# socket at ${NOMAD_SECRETS_DIR}/api.sock; nomad-metrics cannot use it yet
# because it speaks HTTP over TCP only.

variable "image" {
  type        = string
  description = "nomad-metrics image reference (tag or digest)"
  default     = "nomad-metrics:0.2.0"
}

variable "statsd_host" {
  type        = string
  description = "DogStatsD host (name or IP) that receives the gauges, e.g. the services host"
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

job "nomad-metrics-client" {
  type        = "system"
  datacenters = var.datacenters

  # Nomad 1.6+: system jobs run only in the "default" node pool unless told
  # otherwise. Uncomment to cover nodes in every pool.
  # node_pool = "all"

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
    task "nomad-metrics" {
      driver = "docker"

      config {
        image = var.image
        args  = ["start", "--client"]

        # Like the original `docker run --net=host`: the agent's HTTP port and
        # the DogStatsD address are reached exactly as from the host.
        network_mode = "host"

        readonly_rootfs = true
        cap_drop        = ["all"]
        security_opt    = ["no-new-privileges"]
      }

      # Nomad 1.5+ with ACLs: expose this task's workload identity as
      # NOMAD_TOKEN. The agent accepts it over its TCP HTTP API as well as over
      # the Task API, with the policies attached to this job (see the top of
      # this file). Harmless where ACLs are disabled (the agent ignores tokens).
      # Remove this block on Nomad < 1.5.
      identity {
        env = true
      }

      env {
        # The local agent. attr.unique.network.ip-address exists on every Nomad
        # version; the agent must listen there (the default bind_addr 0.0.0.0
        # does) on port 4646. If it binds elsewhere or on another port, use its
        # advertised HTTP address instead: "http://${attr.unique.advertise.address}"
        # on Nomad 1.10+, "http://${attr.nomad.advertise.address}" on 0.9 to 1.9.
        # With TLS: https://..., plus NOMAD_CACERT / NOMAD_CLIENT_CERT /
        # NOMAD_CLIENT_KEY pointing at files placed by a template or volume.
        NOMAD_ADDR = "http://${attr.unique.network.ip-address}:4646"

        DD_AGENT_HOST     = var.statsd_host
        DD_DOGSTATSD_PORT = var.statsd_port
        RUST_LOG          = "info"
      }

      # Measured (docs/deploy.md, "Resources"): peak resident memory 4.4 MB and
      # about 2 ms of CPU per poll with 200 allocations on the node, i.e. well
      # under 1 MHz on average at the default 10 s interval. Docker enforces
      # `memory` as a hard limit; `cpu` is a scheduling weight.
      resources {
        cpu    = 50 # MHz
        memory = 32 # MB
      }

      logs {
        max_files     = 2
        max_file_size = 5 # MB
      }
    }
  }
}
