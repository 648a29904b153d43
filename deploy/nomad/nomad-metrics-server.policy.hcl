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
# GET /v1/status/leader (the liveness check each poll) needs no rule. (Over the
# Task API every request needs a valid token or workload identity, rules or not.)

# GET /v1/agent/self: the Nomad version, which decides which list features
# (namespace=*, resources=true, filter, paging) can be used.
agent {
  policy = "read"
}

# GET /v1/nodes?resources=true: the node census (server_agent.nodes.*) and the
# capacity totals. Without it those gauges are left out (logged once; the job
# counts still come).
node {
  policy = "read"
}

namespace "*" {
  # list-jobs: GET /v1/jobs?namespace=*, the job counts (server_agent.jobs.*).
  # The list covers only namespaces this rule matches.
  # read-job: GET /v1/allocations?namespace=*&resources=true&task_states=false,
  # the allocated/available capacity (server_agent.capacity.*). Without it
  # those gauges are left out (logged once; the job counts still come).
  capabilities = ["list-jobs", "read-job"]
}
