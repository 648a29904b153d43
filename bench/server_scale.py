#!/usr/bin/env python3
"""Server-mode benchmark: full poll time, peak RSS, and the ratio of the poll
time to a plain download of the same answers, measured in the same run.

    python3 bench/server_scale.py            # 1k, 10k, 100k jobs
    python3 bench/server_scale.py --sizes 100000 --repeat 5

For each size it starts the repository's fake Nomad (`examples/fake_nomad.rs`,
release build) on 127.0.0.1 with N synthetic jobs, once alone and once with
5,000 nodes and 50,000 allocations (the capacity path), then:

- baseline: `curl` downloads the answers a full poll reads (`/v1/jobs`,
  `/v1/nodes?resources=true`, `/v1/allocations?...`, in parallel as the
  daemon reads them), to /dev/null; median of --repeat runs. Its time to
  first byte (the latest of the parallel downloads) is shown too: until
  then the server is building its answer and neither client can work;
- daemon: `nomad-metrics start --server --dry-run` against the same fake;
  the poll time is its own `poll_duration_ms` gauge of the first (full)
  poll, the peak RSS is VmHWM from /proc after that poll; median poll time
  and largest RSS of --repeat runs.

Only loopback traffic. Needs cargo and curl.
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
FILTER = ('DesiredStatus == "run" and ClientStatus != "complete" and '
          'ClientStatus != "failed" and ClientStatus != "lost"')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake(jobs, nodes, allocs):
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(TARGET, "release/examples/fake_nomad"), "--listen", f"127.0.0.1:{port}",
         "--version", "1.11.0", "--jobs", str(jobs), "--nodes", str(nodes), "--allocs", str(allocs)],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once the lists are built
    if "listening" not in line:
        proc.kill()
        sys.exit(f"fake Nomad did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


def curl_seconds(urls):
    """curl fetching all URLs in parallel, bodies discarded: (the end of the
    last transfer, the latest first byte), as curl times them (so curl's own
    start-up is not counted)."""
    cmd = ["curl", "-sS", "--no-progress-meter", "--fail", "-Z", "--parallel-immediate",
           "-w", "%{time_total} %{time_starttransfer}\\n"]
    for u in urls:
        cmd += ["-o", "/dev/null", u]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    times = [tuple(float(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    return max(t[0] for t in times), max(t[1] for t in times)


def bytes_of(urls):
    total = 0
    for u in urls:
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", u],
                             check=True, capture_output=True, text=True).stdout
        total += int(out)
    return total


def daemon_run(url):
    """(poll ms from the daemon's own gauge, peak RSS in KiB).

    The daemon runs in its normal mode (not --once) so that its peak RSS can
    be read from /proc/<pid>/status (VmHWM) after the first full poll, then
    it is stopped with SIGTERM. (getrusage of children would count the
    Python parent's pages copied at fork.)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "DD_"))}
    proc = subprocess.Popen(
        [os.path.join(TARGET, "release/nomad-metrics"), "start", "--server", "--dry-run",
         "--interval", "60s", f"--nomad-uri={url}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    poll_ms = None
    dead = None
    for line in proc.stdout:
        m = re.match(r"circle\.nomad\.server_agent\.(\w+):([0-9.]+)\|g", line)
        if not m:
            continue
        if m.group(1) == "poll_duration_ms":
            poll_ms = float(m.group(2))
        if m.group(1) == "poll_failure":
            if m.group(2) != "0":
                proc.kill()
                sys.exit(f"the poll failed: {proc.stderr.read()}")
            break
    with open(f"/proc/{proc.pid}/status") as f:
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    proc.terminate()
    proc.wait(timeout=5)
    if poll_ms is None:
        sys.exit("no poll_duration_ms gauge in the output")
    return poll_ms, hwm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not shutil.which("curl"):
        sys.exit("curl is required")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "nomad-metrics", "--example", "fake_nomad"],
                       cwd=ROOT, check=True)
    rows = []
    for jobs in [int(s) for s in args.sizes.split(",")]:
        for nodes, allocs in [(0, 0), (5000, 50000)]:
            fake, url = start_fake(jobs, nodes, allocs)
            try:
                urls = [f"{url}/v1/jobs?namespace=*", f"{url}/v1/nodes?resources=true",
                        f"{url}/v1/allocations?namespace=*&resources=true&task_states=false&filter="
                        + FILTER.replace(" ", "%20").replace('"', "%22")]
                size = bytes_of(urls)
                curls = [curl_seconds(urls) for _ in range(args.repeat)]
                curl_s = statistics.median(c[0] for c in curls)
                first_byte_s = statistics.median(c[1] for c in curls)
                runs = [daemon_run(url) for _ in range(args.repeat)]
                poll_ms = statistics.median(r[0] for r in runs)
                rss_mib = max(r[1] for r in runs) / 1024
                rows.append((jobs, nodes, allocs, size / 1e6, poll_ms, curl_s * 1000, first_byte_s * 1000,
                             poll_ms / (curl_s * 1000), rss_mib))
            finally:
                fake.kill()
                fake.wait()
    print()
    print("| jobs | nodes | allocs | MB on the wire | full poll (ms) | curl (ms) | curl's first byte (ms) | poll / curl | peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]:,} | {r[1]:,} | {r[2]:,} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.0f} | {r[6]:.0f} | {r[7]:.2f} | {r[8]:.1f} |")


if __name__ == "__main__":
    main()
