#!/usr/bin/env bash
# Checks deploy/datadog/ (dashboard and monitors) against Datadog's own API
# models, called from .ci/run. See deploy/datadog/check.py for what is
# checked; it first proves that each broken fixture in deploy/datadog/testdata/
# is still rejected, then accepts the real files or exits 1.
#
# The pinned client lives in a venv under target/ (ignored by git, never in
# the tree); it is rebuilt when deploy/datadog/requirements.txt changes.
#
# Environment:
#   NM_DATADOG_VENV   venv to use (default: target/datadog-venv)

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

venv=${NM_DATADOG_VENV:-$root/target/datadog-venv}
requirements=deploy/datadog/requirements.txt
stamp=$venv/.requirements.sha256

make_venv() {
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
}

want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! make_venv 2>/dev/null; then
    # Debian's python3 leaves ensurepip out; it comes with python3-venv.
    if command -v apt-get >/dev/null 2>&1; then
      echo "python3 -m venv failed; installing python3-venv"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      make_venv
    else
      echo "python3 -m venv failed and apt-get is not available" >&2
      exit 1
    fi
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi

"$venv/bin/python" -c 'from importlib.metadata import version; print("datadog-api-client", version("datadog-api-client"))'
"$venv/bin/python" deploy/datadog/check.py
