#!/usr/bin/env bash
# User data for a Nomad client ("builder") host: paste it into the launch
# template (or launch configuration) of the builders' auto-scaling group.
#
# On Ubuntu 24.04 LTS it installs Docker (the distribution's docker.io) and
# Nomad (HashiCorp's apt repository), writes the Nomad client configuration
# (servers and telemetry pointing at the services host), starts Nomad, and
# starts nomad-metrics in --client mode in a host-network container, as the
# original launch configuration did.
#
# Set the two values below (or export them before this script runs). Re-running
# the script is safe: it changes only what differs and restarts only what it
# changed. Output goes to /var/log/cloud-init-output.log.
#
# See docs/deploy.md, "Builder hosts", for the security-group rule the services
# host needs (UDP 8125 from the builders' subnet).

set -euo pipefail

# --- Parameters --------------------------------------------------------------

# Private IP of the services host: Nomad servers (RPC 4647) and DogStatsD (UDP 8125).
SERVICES_PRIVATE_IP="${SERVICES_PRIVATE_IP:-}"
# nomad-metrics image, by tag or digest, e.g. registry.example.com/nomad-metrics:0.2.0
NOMAD_METRICS_IMAGE="${NOMAD_METRICS_IMAGE:-}"

# Optional.
NOMAD_METRICS_STATSD_PORT="${NOMAD_METRICS_STATSD_PORT:-8125}"
# ACL token for nomad-metrics (deploy/nomad/nomad-metrics-client.policy.hcl);
# leave empty on clusters without ACLs.
NOMAD_METRICS_TOKEN="${NOMAD_METRICS_TOKEN:-}"
NOMAD_DATACENTER="${NOMAD_DATACENTER:-us-east-1}"
NOMAD_NODE_CLASS="${NOMAD_NODE_CLASS:-linux-64bit}"
# "apt" installs Nomad from HashiCorp's apt repository; "skip" uses the nomad
# binary and nomad.service already in the machine image.
NOMAD_INSTALL="${NOMAD_INSTALL:-apt}"
# Pin a Nomad package version (e.g. 1.10.5-1); empty means the newest.
NOMAD_VERSION="${NOMAD_VERSION:-}"
# The original builders enabled the raw_exec driver; set to false if no job uses it.
NOMAD_RAW_EXEC="${NOMAD_RAW_EXEC:-true}"

CONTAINER_NAME=nomad_metrics

# --- Helpers -----------------------------------------------------------------

log() { printf '==> %s\n' "$*"; }
die() { printf 'user-data: %s\n' "$*" >&2; exit 1; }

# install_if_changed SRC DEST MODE: put SRC at DEST unless DEST already has the
# same content; prints "changed" when it wrote the file.
install_if_changed() {
  local src=$1 dest=$2 mode=$3
  if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
    rm -f "$src"
    return 0
  fi
  install -D -m "$mode" "$src" "$dest"
  rm -f "$src"
  echo changed
}

# --- Checks --------------------------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ $SERVICES_PRIVATE_IP =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
  die "set SERVICES_PRIVATE_IP at the top of this script (an IPv4 address, got '${SERVICES_PRIVATE_IP}')"
[[ -n $NOMAD_METRICS_IMAGE ]] || die "set NOMAD_METRICS_IMAGE at the top of this script"
[[ $NOMAD_METRICS_STATSD_PORT =~ ^[0-9]+$ ]] || die "NOMAD_METRICS_STATSD_PORT must be a number"
[[ $NOMAD_INSTALL == apt || $NOMAD_INSTALL == skip ]] || die "NOMAD_INSTALL must be apt or skip"
[[ $NOMAD_RAW_EXEC == true || $NOMAD_RAW_EXEC == false ]] || die "NOMAD_RAW_EXEC must be true or false"

export DEBIAN_FRONTEND=noninteractive

# --- Docker --------------------------------------------------------------------

log "Installing Docker"
apt-get update -q
apt-get install -y -q --no-install-recommends ca-certificates curl gpg docker.io
systemctl enable --now docker.service

# --- Nomad ---------------------------------------------------------------------

if [[ $NOMAD_INSTALL == apt ]]; then
  log "Installing Nomad"
  keyring=/usr/share/keyrings/hashicorp-archive-keyring.gpg
  if [[ ! -s $keyring ]]; then
    curl -fsSL https://apt.releases.hashicorp.com/gpg | gpg --dearmor --yes -o "$keyring"
  fi
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  list=$(mktemp)
  echo "deb [signed-by=$keyring] https://apt.releases.hashicorp.com $codename main" >"$list"
  if [[ -n $(install_if_changed "$list" /etc/apt/sources.list.d/hashicorp.list 0644) ]]; then
    apt-get update -q
  fi
  apt-get install -y -q nomad${NOMAD_VERSION:+="$NOMAD_VERSION"}
fi
command -v nomad >/dev/null || die "nomad is not installed (NOMAD_INSTALL=$NOMAD_INSTALL)"

log "Writing the Nomad client configuration"
install -d -m 0700 /opt/nomad/data
config=$(mktemp)
cat >"$config" <<EOF
# Written by the builder user-data script; re-running it rewrites this file.
data_dir   = "/opt/nomad/data"
datacenter = "${NOMAD_DATACENTER}"
log_level  = "INFO"

# The address of the interface with the default route (go-sockaddr template).
advertise {
  http = "{{ GetPrivateIP }}"
  rpc  = "{{ GetPrivateIP }}"
  serf = "{{ GetPrivateIP }}"
}

client {
  enabled    = true
  servers    = ["${SERVICES_PRIVATE_IP}:4647"]
  node_class = "${NOMAD_NODE_CLASS}"
}

plugin "raw_exec" {
  config {
    enabled = ${NOMAD_RAW_EXEC}
  }
}

# Nomad's own metrics, with tags, to the DogStatsD on the services host.
telemetry {
  collection_interval        = "10s"
  disable_hostname           = true
  publish_allocation_metrics = true
  publish_node_metrics       = true
  datadog_address            = "${SERVICES_PRIVATE_IP}:${NOMAD_METRICS_STATSD_PORT}"
}
EOF
# The package's default /etc/nomad.d/nomad.hcl runs a server too: replace it.
nomad_changed=$(install_if_changed "$config" /etc/nomad.d/nomad.hcl 0640)

log "Starting Nomad"
systemctl enable nomad.service
if [[ -n $nomad_changed ]]; then
  systemctl restart nomad.service
else
  systemctl start nomad.service
fi

# --- Docker network for CI jobs (as on the original builders) ------------------

if ! docker network inspect ci-privileged >/dev/null 2>&1; then
  log "Creating the ci-privileged Docker network"
  docker network create --driver=bridge \
    --opt com.docker.network.bridge.name=ci-privileged ci-privileged
fi

# --- nomad-metrics -------------------------------------------------------------

log "Starting nomad-metrics"
docker pull "$NOMAD_METRICS_IMAGE"

# The ACL token goes in a root-only env file, not on the command line.
envfile=$(mktemp)
if [[ -n $NOMAD_METRICS_TOKEN ]]; then
  printf 'NOMAD_TOKEN=%s\n' "$NOMAD_METRICS_TOKEN" >"$envfile"
fi
install_if_changed "$envfile" /etc/nomad-metrics/env 0600 >/dev/null

metrics_args=(
  start
  --nomad-uri=http://localhost:4646
  "--statsd-host=${SERVICES_PRIVATE_IP}"
  "--statsd-port=${NOMAD_METRICS_STATSD_PORT}"
  --client
)

# Recreate the container only if the image or the settings changed.
image_id=$(docker image inspect --format '{{.Id}}' "$NOMAD_METRICS_IMAGE")
want=$({ echo "$image_id"; printf '%s\n' "${metrics_args[@]}"; cat /etc/nomad-metrics/env; } |
  sha256sum | cut -d' ' -f1)
have=$(docker inspect --format '{{index .Config.Labels "nomad-metrics.config"}} {{.State.Running}}' \
  "$CONTAINER_NAME" 2>/dev/null || true)
if [[ $have == "$want true" ]]; then
  log "nomad-metrics is already running with these settings"
else
  docker rm -f "$CONTAINER_NAME" >/dev/null 2>&1 || true
  docker run -d --name "$CONTAINER_NAME" \
    --restart=unless-stopped \
    --net=host \
    --userns=host \
    --read-only \
    --cap-drop=ALL \
    --security-opt=no-new-privileges \
    --memory=64m \
    --log-opt max-size=10m --log-opt max-file=3 \
    --env-file /etc/nomad-metrics/env \
    --label "nomad-metrics.config=${want}" \
    "$NOMAD_METRICS_IMAGE" \
    "${metrics_args[@]}"
fi

log "Done"
