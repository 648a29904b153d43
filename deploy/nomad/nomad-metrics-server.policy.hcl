# ACL policy for nomad-metrics --server: read-only, and only what a server-mode
# poll touches. Apply it to the service job's workload identity (Nomad 1.5+):
#
#   nomad acl policy apply -namespace default -job nomad-metrics-server \
#     -description "nomad-metrics --server" \
#     nomad-metrics-server deploy/nomad/nomad-metrics-server.policy.hcl
#
# or, for a container or pod outside Nomad (services host, Kubernetes), to a token:
#
#   nomad acl policy apply -description "nomad-metrics --server" \
#     nomad-metrics-server-token deploy/nomad/nomad-metrics-server.policy.hcl
#   nomad acl token create -name nomad-metrics-server -policy nomad-metrics-server-token
#
# (Two policy names: applying a policy without -job detaches it from the job.)
#
# GET /v1/status/leader (the liveness check each poll) needs no rule.

# GET /v1/agent/self: the Nomad version, which decides which list features
# (namespace=*, resources=true, filter, paging) can be used.
agent {
  policy = "read"
}

# GET /v1/nodes: the node census (server_agent.nodes.*) and the capacity
# totals. Without it those gauges are left out (the jobs gauges still come).
node {
  policy = "read"
}

namespace "*" {
  # list-jobs: GET /v1/jobs?namespace=*, the job counts (server_agent.jobs.*).
  # The list covers only namespaces this rule matches.
  # read-job: GET /v1/allocations?namespace=*, the allocated/available
  # capacity (server_agent.capacity.*). Without it those gauges are left out.
  capabilities = ["list-jobs", "read-job"]
}
