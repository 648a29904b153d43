# ACL policy for nomad-metrics --client: read-only, and only what a client-mode
# poll touches. Apply it to the system job's workload identity (Nomad 1.5+; the
# job reaches its agent through the Task API with that identity):
#
#   nomad acl policy apply -namespace default -job nomad-metrics-client \
#     -description "nomad-metrics --client" \
#     nomad-metrics-client deploy/nomad/nomad-metrics-client.policy.hcl
#
# or, for a container outside Nomad (user-data, systemd), to a token:
#
#   nomad acl policy apply -description "nomad-metrics --client" \
#     nomad-metrics-client-token deploy/nomad/nomad-metrics-client.policy.hcl
#   nomad acl token create -name nomad-metrics-client -policy nomad-metrics-client-token
#
# (Two policy names: applying a policy without -job detaches it from the job.)

# GET /v1/agent/self: the ID of the node this agent runs as, and its version.
agent {
  policy = "read"
}

# GET /v1/node/<id> and GET /v1/node/<id>/allocations.
node {
  policy = "read"
}

# /v1/node/<id>/allocations silently leaves out allocations of namespaces the
# token may not read-job in (it answers 200, not 403). Without this rule the
# "used" gauges would count only some of the node's allocations.
namespace "*" {
  capabilities = ["read-job"]
}
