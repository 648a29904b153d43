"""Validate deploy/datadog/ against Datadog's own API models.

The dashboard is read into datadog_api_client.v1.model.dashboard.Dashboard and
every monitor into datadog_api_client.v1.model.monitor.Monitor the way the
client reads an API answer: ApiClient.deserialize, which runs
model_utils.validate_and_convert_types with the spec's JSON key names.

That deserializer is lenient by design, so a successful call proves little:

- data that fits no model (a widget of an unknown type, an enum value the
  spec does not list, a oneOf that matches no branch) does not raise; the
  object, or some object deep inside it, is marked `_unparsed` (often an
  UnparsedObject that simply keeps the raw dict);
- a key the model does not declare is kept as an "additional property"
  instead of being refused, so a misspelt option is silently ignored by the
  API later;
- a composed (oneOf) model can discard keys that the matched branch does not
  hold.

So after deserializing, this walks the whole object tree and reports every
`_unparsed` object, every key that is not a declared property of its model,
every read-only property (an exported dashboard's `id`, a monitor's `state`:
they do not belong in a create body), and finally serializes the object back
the way the client builds a request body and compares it with the input, so
that nothing was dropped or rewritten on the way.

Run through .ci/datadog-check.sh. Before the real files, every fixture in
testdata/ must be rejected for the reason listed in BROKEN below: a checker
that stops finding faults fails the run instead of passing everything.
"""

import json
import sys
from pathlib import Path

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    OpenApiModel,
    UnparsedObject,
    data_to_dict,
    validate_and_convert_types,
)
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor

HERE = Path(__file__).resolve().parent

# Each broken fixture, what it is, and a phrase its rejection must contain.
BROKEN = {
    "broken-dashboard-widget-type.json": ("dashboard", "type 'timeseriez' is no kind of WidgetDefinition"),
    "broken-dashboard-unknown-key.json": ("dashboard", "unknown key 'formulaz'"),
    "broken-dashboard-palette.json": ("dashboard", "value 'white_on_redd' not understood"),
    "broken-dashboard-read-only.json": ("dashboard", "read-only key 'id'"),
    "broken-monitor-type.json": ("monitors", "value 'metric alrt' not understood"),
    "broken-monitor-option.json": ("monitors", "unknown key 'notify_nodata'"),
    "broken-monitor-renotify-status.json": ("monitors", "value 'nodata' not understood"),
}

CLIENT = ApiClient(Configuration())


def deserialize(doc, model):
    """The client's own path for an API answer of type `model`."""
    return CLIENT.deserialize(json.dumps(doc), (model,), True)


def walk(obj, path, problems):
    """Report every unparsed object, unknown key and read-only key below obj."""
    if isinstance(obj, UnparsedObject):
        keys = ", ".join(sorted(obj._data_store)) or "no keys"
        problems.append(f"{path}: not understood by any model (holds {keys})")
        return
    if isinstance(obj, ModelSimple):
        if obj._unparsed:
            problems.append(f"{path}: value {obj._data_store.get('value')!r} not understood ({type(obj).__name__})")
        return
    if isinstance(obj, ModelComposed):
        if obj._unparsed and not obj._composed_instances:
            problems.append(f"{path}: not understood ({type(obj).__name__}, no oneOf branch matched)")
        for inner in obj._composed_instances:
            if isinstance(inner, UnparsedObject):
                explain(type(obj), inner._data_store, path, problems)
            else:
                walk(inner, path, problems)
        return
    if isinstance(obj, ModelNormal):
        declared = obj.openapi_types
        for key, value in obj._data_store.items():
            if key not in declared:
                problems.append(f"{path}: unknown key {key!r} for {type(obj).__name__}")
            elif key in obj.read_only_vars:
                problems.append(f"{path}: read-only key {key!r} does not belong in a create request")
            walk(value, f"{path}.{key}", problems)
        # An object can be marked unparsed by a child that was reported above;
        # if nothing below explains the mark, report the mark itself.
        if obj._unparsed and not any(p.startswith(path) for p in problems):
            problems.append(f"{path}: {type(obj).__name__} marked unparsed")
        return
    if isinstance(obj, OpenApiModel):
        problems.append(f"{path}: unexpected model kind {type(obj).__name__}")
        return
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            walk(value, f"{path}[{i}]", problems)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            walk(value, f"{path}.{key}", problems)


def branch_for(composed, kind):
    """The oneOf branch of `composed` whose `type` enum lists `kind`, if any."""
    for branch in composed._composed_schemas.get("oneOf", ()):
        types = getattr(branch, "openapi_types", {}).get("type", ()) if isinstance(branch, type) else ()
        for t in types:
            if isinstance(t, type) and issubclass(t, ModelSimple) and kind in t.allowed_values:
                return branch
    return None


def explain(composed, raw, path, problems):
    """Say why `raw` matched no oneOf branch of `composed`.

    The client swallows the branch's error and keeps the raw dict, so the
    fault may sit deep inside (a widget in a group): read the dict again
    into the branch its `type` names, this time without the safety net.
    """
    kind = raw.get("type")
    branch = branch_for(composed, kind) if isinstance(kind, str) else None
    if branch is None:
        problems.append(f"{path}: not understood by any model: type {kind!r} is no kind of {composed.__name__}")
        return
    before = len(problems)
    try:
        inner = validate_and_convert_types(raw, (branch,), [path], True, True, configuration=CLIENT.configuration)
    except Exception as exc:
        problems.append(f"{path}: not understood by any model: as {branch.__name__}: {exc}")
        return
    walk(inner, path, problems)
    if len(problems) == before:
        problems.append(f"{path}: not understood by any model (holds {', '.join(sorted(raw))})")


def diff(want, got, path, problems):
    """Report where the re-serialized object differs from the input."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in want.keys() - got.keys():
            problems.append(f"{path}.{key}: dropped by the deserializer")
        for key in got.keys() - want.keys():
            problems.append(f"{path}.{key}: added by the deserializer")
        for key in want.keys() & got.keys():
            diff(want[key], got[key], f"{path}.{key}", problems)
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            problems.append(f"{path}: {len(want)} items in, {len(got)} out")
        for i, (w, g) in enumerate(zip(want, got)):
            diff(w, g, f"{path}[{i}]", problems)
    elif want != got or isinstance(want, bool) != isinstance(got, bool):
        problems.append(f"{path}: {want!r} came back as {got!r}")


def check_one(doc, model, path):
    problems = []
    if not isinstance(doc, dict):
        return [f"{path}: expected a JSON object, found {type(doc).__name__}"]
    try:
        obj = deserialize(doc, model)
    except Exception as exc:  # the client raises its own Api*Error family
        return [f"{path}: rejected by {model.__name__}: {type(exc).__name__}: {exc}"]
    if not isinstance(obj, model):
        return [f"{path}: deserialized into {type(obj).__name__}, not {model.__name__}"]
    walk(obj, path, problems)
    diff(doc, data_to_dict(obj), path, problems)
    return problems


def check_dashboard(doc):
    return check_one(doc, Dashboard, "dashboard")


def check_monitors(doc):
    if not isinstance(doc, list) or not doc:
        return ["monitors: expected a non-empty JSON array of monitor bodies"]
    problems = []
    for i, monitor in enumerate(doc):
        problems += check_one(monitor, Monitor, f"monitors[{i}]")
    return problems


CHECKS = {"dashboard": check_dashboard, "monitors": check_monitors}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    ok = True

    # 1. The checker must still catch each kind of fault.
    testdata = HERE / "testdata"
    present = {p.name for p in testdata.glob("broken-*.json")}
    for name in sorted(present - BROKEN.keys()):
        print(f"FAIL testdata/{name}: not listed in check.py's BROKEN table")
        ok = False
    for name, (kind, reason) in sorted(BROKEN.items()):
        if name not in present:
            print(f"FAIL testdata/{name}: fixture missing")
            ok = False
            continue
        problems = CHECKS[kind](load(testdata / name))
        if not problems:
            print(f"FAIL testdata/{name}: accepted, but it is broken ({reason})")
            ok = False
        elif not any(reason in p for p in problems):
            print(f"FAIL testdata/{name}: rejected, but not for {reason!r}: {problems}")
            ok = False
        else:
            first = next(p for p in problems if reason in p)
            print(f"ok   testdata/{name} rejected: {first}")

    # 2. The shipped files must be clean.
    for kind, name in (("dashboard", "dashboard.json"), ("monitors", "monitors.json")):
        problems = CHECKS[kind](load(HERE / name))
        for p in problems:
            print(f"FAIL {name}: {p}")
        if problems:
            ok = False
        else:
            print(f"ok   {name} accepted by the {kind} model{'s' if kind == 'monitors' else ''}")

    if not ok:
        print("datadog check: FAILED")
        return 1
    print("datadog check: all fixtures rejected, dashboard and monitors accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
