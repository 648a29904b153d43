# nomad-metrics in --client mode as a Nomad system job: one instance on every
# client node, each polling its own local agent and reporting that node's
# resources (total / used / available) to DogStatsD.
#
#   nomad job run \
#     -var 'image=registry.example.com/nomad-metrics:0.2.0' \
#     -var 'statsd_host=10.0.0.5' \
#     deploy/nomad/nomad-metrics-client.nomad.hcl
#
# Needs Nomad 1.5+ (the Task API and workload identities) with the docker
# driver. On a cluster with ACLs, attach the policy in
# nomad-metrics-client.policy.hcl to this job once (see docs/deploy.md,
# "Nomad jobs"):
#
#   nomad acl policy apply -namespace default -job nomad-metrics-client \
#     -description "nomad-metrics --client" \
#     nomad-metrics-client deploy/nomad/nomad-metrics-client.policy.hcl
#
# How the task reaches its agent: through the Task API, a Unix socket that the
# local agent opens in every task's secrets directory (/secrets/api.sock in a
# docker task). It serves the agent's whole HTTP API (here /v1/agent/self,
# /v1/node/<id> and /v1/node/<id>/allocations), needs no address, port or TLS
# settings, and always requires a token: the workload identity below. On
# Nomad 1.0 to 1.4, see the comments at NOMAD_ADDR and identity.

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

        # Like the original `docker run --net=host`: DogStatsD is reached
        # exactly as from the host (a Datadog agent on 127.0.0.1 works too).
        network_mode = "host"

        readonly_rootfs = true
        cap_drop        = ["all"]
        security_opt    = ["no-new-privileges"]
      }

      # The task's workload identity as NOMAD_TOKEN. Required: the Task API
      # rejects requests without a token even where ACLs are disabled. With
      # ACLs it carries the policies attached to this job (see the top of this
      # file). Nomad < 1.5: remove this block (and see NOMAD_ADDR below).
      identity {
        env = true
      }

      env {
        # The local agent's Task API socket. Nomad 1.10.3+ also sets the same
        # value as NOMAD_UNIX_ADDR ("${NOMAD_UNIX_ADDR}" works there);
        # NOMAD_SECRETS_DIR works on every version with the Task API (1.5+).
        NOMAD_ADDR = "unix://${NOMAD_SECRETS_DIR}/api.sock"

        # Nomad 1.0 to 1.4 (no Task API), or to bypass it: the agent's HTTP
        # port on the node's address, which needs the agent to listen there
        # (the default bind_addr 0.0.0.0 does) on port 4646. If it binds
        # elsewhere, use "http://${attr.unique.advertise.address}" (Nomad
        # 1.10+) or "http://${attr.nomad.advertise.address}" (0.9 to 1.9).
        # With TLS: https://..., plus NOMAD_CACERT / NOMAD_CLIENT_CERT /
        # NOMAD_CLIENT_KEY pointing at files placed by a template or volume.
        # NOMAD_ADDR = "http://${attr.unique.network.ip-address}:4646"

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
