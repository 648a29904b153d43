#!/usr/bin/env python3
"""Server-mode cost under churn: bytes read from Nomad per minute, blocking
queries (`--event-stream=off`) against the event stream (`--event-stream=auto`).

    python3 bench/server_churn.py                 # 4 changes/s, 60 s per path
    python3 bench/server_churn.py --churn 20 --minutes 2
    python3 bench/server_churn.py --no-build --daemon path/to/nomad-metrics

It builds the release daemon and the fake Nomad (`examples/fake_nomad.rs`),
starts the fake on 127.0.0.1 as Nomad 2.0.5 with 100,000 jobs, 5,000 nodes,
50,000 allocations and N changes per second from a seeded generator (builds
registered, placed, running, complete or failed; dead jobs collected; a node
drained and back, a node down and up), then, for each path in turn:

- runs `nomad-metrics start --server --dry-run` at the default interval
  (10 s) against it; the bootstrap (start to the first poll's gauges) is
  reported on its own, then one interval of warm-up, then the measured
  window;
- reads the fake's own byte and request counters (`GET /_fake/stats`:
  every byte the fake wrote, headers included, per path), the daemon's
  CPU time (utime + stime from /proc/<pid>/stat) and peak RSS (VmHWM);
- checks correctness: pauses the churn, waits two intervals, and compares
  the daemon's last gauges (its `--dry-run` DogStatsD lines) with a fresh
  `nomad-metrics start --server --once --dry-run` against the same fake.

"one full read" is what one `--server --once` poll reads on the wire (the
three lists, as the daemon asks for them), for reading the "at most 5 % of one
full read per minute" target off the table. Loopback only; every wait is
bounded. Needs cargo (unless --no-build) and Python 3.8+.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
INTERVAL_S = 10
LINE = re.compile(r"^([A-Za-z0-9_.]+):(-?[0-9.eE+]+)\|g(?:\|#(.*))?$")
# Per-poll measurements, not cluster state: left out of the comparison.
VOLATILE = re.compile(r"poll|duration|_ms$|bytes|requests|latency|uptime|health|stream|last_")


def volatile(name):
    return bool(VOLATILE.search(name.split("server_agent.", 1)[-1]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, timeout=30):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def stats(url):
    return json.loads(http("GET", f"{url}/_fake/stats"))


def served(st, prefix="/v1/"):
    """(bytes, requests) on paths under prefix."""
    b = sum(v["bytes"] for p, v in st["paths"].items() if p.startswith(prefix))
    n = sum(v["requests"] for p, v in st["paths"].items() if p.startswith(prefix))
    return b, n


def start_fake(args):
    port = free_port()
    cmd = [os.path.join(TARGET, "release/examples/fake_nomad"), "--listen", f"127.0.0.1:{port}",
           "--version", args.version, "--jobs", str(args.jobs), "--nodes", str(args.nodes),
           "--allocs", str(args.allocs), "--churn", str(args.churn), "--seed", str(args.seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once the lists and the model are built
    if "listening" not in line:
        proc.kill()
        sys.exit(f"fake Nomad did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


def full_read_bytes(daemon, url):
    """Wire bytes of one full read as the daemon makes it: one
    `--server --once` poll (the three lists, and /v1/agent/self)."""
    before = served(stats(url))[0]
    once(daemon, url)
    return served(stats(url))[0] - before


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "DD_"))}


class Gauges:
    """Reads a daemon's --dry-run stdout: the latest value of every series,
    and when the first poll completed."""

    def __init__(self, proc):
        self.latest = {}
        self.first_poll = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            m = LINE.match(line.strip())
            if not m:
                continue
            name, value, tags = m.group(1), float(m.group(2)), m.group(3) or ""
            with self.lock:
                self.latest[(name, tags)] = value
            if name.endswith("poll_failure"):
                self.first_poll.set()

    def snapshot(self):
        with self.lock:
            return dict(self.latest)


def once(daemon, url):
    out = subprocess.run([daemon, "start", "--server", "--once", "--dry-run", f"--nomad-uri={url}"],
                         capture_output=True, text=True, timeout=300, env=env()).stdout
    got = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            got[(m.group(1), m.group(3) or "")] = float(m.group(2))
    return got


def compare(follow, fresh):
    """Series of the fresh read whose value the follower does not have."""
    bad = []
    for key, value in sorted(fresh.items()):
        if volatile(key[0]):
            continue
        mine = follow.get(key, 0.0 if value == 0 else None)
        if mine is None or abs(mine - value) > 1e-6:
            bad.append((key, mine, value))
    return bad


def run_path(args, daemon, url, mode):
    st0 = stats(url)
    t0 = time.monotonic()
    proc = subprocess.Popen([daemon, "start", "--server", "--dry-run", f"--nomad-uri={url}",
                             f"--event-stream={mode}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    stderr_tail = []

    def keep_tail():
        for line in proc.stderr:
            stderr_tail.append(line)
            del stderr_tail[:-20]

    threading.Thread(target=keep_tail, daemon=True).start()
    gauges = Gauges(proc)
    try:
        if not gauges.first_poll.wait(timeout=300):
            sys.exit(f"{mode}: no first poll within 300 s: {''.join(stderr_tail)}")
        boot_s = time.monotonic() - t0
        st_boot = stats(url)
        time.sleep(INTERVAL_S)  # warm-up: one interval
        st1, cpu1, t1 = stats(url), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.minutes * 60)
        st2, cpu2, t2 = stats(url), cpu_seconds(proc.pid), time.monotonic()
        if proc.poll() is not None:
            sys.exit(f"{mode}: the daemon exited: {''.join(stderr_tail)}")
        per_min = 60 / (t2 - t1)
        b0, n0 = served(st0)
        bb, _ = served(st_boot)
        b1, n1 = served(st1)
        b2, n2 = served(st2)
        row = {
            "mode": mode,
            "boot_s": boot_s,
            "boot_bytes": bb - b0,
            "steady_bytes_min": (b2 - b1) * per_min,
            "with_boot_bytes_min": (b2 - b0) * 60 / (t2 - t0),
            "requests_min": (n2 - n1) * per_min,
            "cpu_s_min": (cpu2 - cpu1) * per_min,
            "rss_mib": peak_rss_kib(proc.pid) / 1024,
            "stream_bytes_min": (served(st2, "/v1/event/stream")[0]
                                 - served(st1, "/v1/event/stream")[0]) * per_min,
        }
        # Correctness: no changes for two intervals, then compare.
        http("POST", f"{url}/_fake/pause")
        time.sleep(2 * INTERVAL_S + 2)
        follow = gauges.snapshot()
        fresh = once(daemon, url)
        row["mismatches"] = compare(follow, fresh)
        row["compared"] = sum(1 for k in fresh if not volatile(k[0]))
        http("POST", f"{url}/_fake/resume")
        return row
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def mb(n):
    return f"{n / 1e6:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--churn", type=float, default=4, help="changes per second (default 4)")
    ap.add_argument("--minutes", type=float, default=1, help="measured window per path (default 1)")
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--allocs", type=int, default=50000)
    ap.add_argument("--version", default="2.0.5")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", default="off,auto")
    ap.add_argument("--daemon", help="a nomad-metrics binary to use instead of building one")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not 0 < args.minutes <= 10:
        sys.exit("--minutes must be in (0, 10]")
    if not args.no_build:
        what = ["--example", "fake_nomad"] + ([] if args.daemon else ["--bin", "nomad-metrics"])
        subprocess.run(["cargo", "build", "--release", "--quiet"] + what, cwd=ROOT, check=True)
    daemon = args.daemon or os.path.join(TARGET, "release/nomad-metrics")
    fake, url = start_fake(args)
    try:
        full = full_read_bytes(daemon, url)
        rows = [run_path(args, daemon, url, m) for m in args.modes.split(",")]
    finally:
        fake.kill()
        fake.wait()
    print()
    print(f"Nomad {args.version} (fake), {args.jobs:,} jobs, {args.nodes:,} nodes, {args.allocs:,} allocations, "
          f"{args.churn:g} changes/s, interval {INTERVAL_S} s, {args.minutes:g} min measured per path. "
          f"One full read of the three lists: {mb(full)} MB.")
    print()
    print("| path | bootstrap (s) | bootstrap (MB) | MB/min steady | % of a full read /min | MB/min incl. bootstrap "
          "| requests/min | CPU s/min | peak RSS (MiB) | gauges equal to a fresh read |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ok = len(r["mismatches"]) == 0
        print(f"| `--event-stream={r['mode']}` | {r['boot_s']:.1f} | {mb(r['boot_bytes'])} | "
              f"{mb(r['steady_bytes_min'])} | {100 * r['steady_bytes_min'] / max(full, 1):.1f} % | "
              f"{mb(r['with_boot_bytes_min'])} | {r['requests_min']:.0f} | {r['cpu_s_min']:.2f} | "
              f"{r['rss_mib']:.0f} | {'yes' if ok else 'NO'} ({r['compared']} series) |")
    bad = False
    for r in rows:
        for key, mine, want in r["mismatches"][:20]:
            bad = True
            print(f"mismatch ({r['mode']}): {key[0]}|#{key[1]}: daemon {mine}, fresh read {want}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
