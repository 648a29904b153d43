//! `deploy/datadog/`: the dashboard and the monitors query only metrics the
//! daemon sends (`gauges::CATALOGUE`), filter and group them only by tag keys
//! those metrics carry, and the dashboard shows every catalogue metric.
//! (Whether Datadog's API models accept the files is `.ci/datadog-check.sh`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nomad_metrics::gauges::{CATALOGUE, PREFIX};
use serde_json::Value;

/// Identity tags of the polled node (`gauges::client::identity_tags`).
const IDENTITY: &[&str] = &[
    "node_id",
    "node_name",
    "datacenter",
    "node_class",
    "node_pool",
];

/// The tag keys the daemon puts on metric `name` (relative to `PREFIX`),
/// besides the operator's global tags; `None` for a family this table does
/// not know yet (a test below makes every catalogue entry known).
///
/// Read from the source: `gauges::server` tags `jobs_by_type.*` with `type`
/// and `namespace`, the census with the node group plus `drain` and
/// `eligibility`, capacity with the node group only; the `jobs.*` totals are
/// untagged. `gauges::client` tags resources with `drain`, `status` and the
/// identity tags; the pipeline puts the identity tags on the client's health
/// gauges and nothing on the server's.
fn tag_keys(name: &str) -> Option<Vec<&'static str>> {
    const GROUP: &[&str] = &["datacenter", "node_class", "node_pool"];
    let keys: Vec<&'static str> = match name {
        "server_agent.poll_failure"
        | "server_agent.poll_duration_ms"
        | "server_agent.last_success_age_s" => vec![],
        n if n.starts_with("server_agent.jobs.") => vec![],
        n if n.starts_with("server_agent.jobs_by_type.") => vec!["type", "namespace"],
        n if n.starts_with("server_agent.nodes.") => [GROUP, &["drain", "eligibility"]].concat(),
        n if n.starts_with("server_agent.capacity.") => GROUP.to_vec(),
        "client_agent.poll_failure"
        | "client_agent.poll_duration_ms"
        | "client_agent.last_success_age_s" => IDENTITY.to_vec(),
        n if n.starts_with("client_agent.resources.") => [&["drain", "status"], IDENTITY].concat(),
        _ => return None,
    };
    Some(keys)
}

/// One metric as a query string uses it.
#[derive(Debug, Default, PartialEq)]
struct MetricUse {
    /// Full name, `PREFIX.…`.
    metric: String,
    /// Tag keys in the `{…}` filter (`key:value`, `!key:value`, bare `key`).
    filter_keys: Vec<String>,
    /// Template variables in the filter (`$name`, without the `$`).
    variables: Vec<String>,
    /// Tag keys of the `by {…}` grouping.
    group_keys: Vec<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Every `PREFIX.…` metric name in free text (titles, messages), where no
/// query grammar applies; a name followed by `*` is a family and keeps it.
fn names_in_text(text: &str) -> Vec<String> {
    let start = format!("{PREFIX}.");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&start).map(|i| from + i) {
        let end = text[at..]
            .find(|c: char| !is_name_char(c))
            .map_or(text.len(), |i| at + i);
        if text[end..].starts_with('*') {
            // A family, `circle.nomad.client_agent.*`: kept with its star.
            out.push(format!("{}*", &text[at..end]));
        } else if !text[..at].ends_with(is_name_char) {
            out.push(text[at..end].trim_end_matches('.').to_owned());
        }
        from = end;
    }
    out
}

/// The text inside the `{…}` that `rest` starts with (after blanks) and what
/// follows it.
fn braces(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start().strip_prefix('{')?;
    let close = rest.find('}')?;
    Some((&rest[..close], &rest[close + 1..]))
}

/// Parses each metric of a Datadog metric query (`avg:NAME{filter} by
/// {keys}`, arithmetic between such terms, a monitor's `last_5m):` head and
/// threshold tail). Strict: a metric of ours without a `{…}` filter, or a
/// filter in a syntax this does not read (`AND`, `IN`, …), is an error.
fn parse_query(query: &str) -> Result<Vec<MetricUse>, String> {
    let start = format!("{PREFIX}.");
    let mut uses = Vec::new();
    let mut from = 0;
    while let Some(at) = query[from..].find(&start).map(|i| from + i) {
        if query[..at].ends_with(is_name_char) {
            return Err(format!("{query:?}: a metric name runs into {PREFIX}"));
        }
        let end = query[at..]
            .find(|c: char| !is_name_char(c))
            .map_or(query.len(), |i| at + i);
        let mut found = MetricUse {
            metric: query[at..end].to_owned(),
            ..MetricUse::default()
        };
        let (filter, mut rest) = braces(&query[end..])
            .ok_or_else(|| format!("{query:?}: {} has no {{…}} filter", found.metric))?;
        for item in filter.split(',').map(str::trim) {
            if item.is_empty() || item.contains(char::is_whitespace) {
                return Err(format!("{query:?}: filter item {item:?} is not read here"));
            }
            if item == "*" {
                continue;
            }
            if let Some(var) = item.strip_prefix('$') {
                found.variables.push(var.to_owned());
                continue;
            }
            let tag = item.trim_start_matches(['!', '-']);
            let key = tag.split_once(':').map_or(tag, |(k, _)| k);
            found.filter_keys.push(key.to_owned());
        }
        let after = rest.trim_start();
        if let Some(by) = after.strip_prefix("by") {
            if by.starts_with(|c: char| c.is_whitespace() || c == '{') {
                let (keys, tail) =
                    braces(by).ok_or_else(|| format!("{query:?}: `by` without {{…}}"))?;
                found.group_keys = keys.split(',').map(|k| k.trim().to_owned()).collect();
                rest = tail;
            }
        }
        from = query.len() - rest.len();
        uses.push(found);
    }
    Ok(uses)
}

/// What a document queries: metric uses from `q` / `query` strings, metric
/// names merely mentioned anywhere else, and errors of strict parsing.
#[derive(Default)]
struct Found {
    uses: Vec<(String, MetricUse)>,
    mentioned: Vec<(String, String)>,
    errors: Vec<String>,
}

fn collect(value: &Value, path: &str, found: &mut Found) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{path}.{key}");
                match (key.as_str(), v) {
                    ("q" | "query", Value::String(q)) => match parse_query(q) {
                        Ok(uses) => found
                            .uses
                            .extend(uses.into_iter().map(|u| (here.clone(), u))),
                        Err(e) => found.errors.push(format!("{here}: {e}")),
                    },
                    _ => collect(v, &here, found),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{path}[{i}]"), found);
            }
        }
        Value::String(s) => found
            .mentioned
            .extend(names_in_text(s).into_iter().map(|n| (path.to_owned(), n))),
        _ => {}
    }
}

/// Everything wrong with a dashboard and a monitor list, one line each.
fn problems(dashboard: &Value, monitors: &Value) -> Vec<String> {
    let catalogue: BTreeMap<String, &str> = CATALOGUE
        .iter()
        .map(|m| (format!("{PREFIX}.{}", m.name), m.name))
        .collect();
    let mut out = Vec::new();

    // Template variables: name → the tag key (prefix) it filters on.
    let mut variables = BTreeMap::new();
    for tv in dashboard["template_variables"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match (tv["name"].as_str(), tv["prefix"].as_str()) {
            (Some(name), Some(prefix)) => {
                variables.insert(name.to_owned(), prefix.to_owned());
            }
            _ => out.push(format!("template variable without name or prefix: {tv}")),
        }
    }

    let mut on_dashboard = BTreeSet::new();
    for (doc_name, doc, vars) in [
        ("dashboard", dashboard, &variables),
        ("monitors", monitors, &BTreeMap::new()),
    ] {
        let mut found = Found::default();
        collect(doc, doc_name, &mut found);
        out.append(&mut found.errors);
        if found.uses.is_empty() {
            out.push(format!("{doc_name}: queries no {PREFIX} metric at all"));
        }
        for (path, name) in &found.mentioned {
            let known = match name.strip_suffix('*') {
                Some(family) => catalogue.keys().any(|n| n.starts_with(family)),
                None => catalogue.contains_key(name),
            };
            if !known {
                out.push(format!(
                    "{path}: mentions {name}, which is not in the catalogue"
                ));
            }
        }
        for (path, u) in &found.uses {
            let Some(relative) = catalogue.get(&u.metric) else {
                out.push(format!("{path}: {} is not in the catalogue", u.metric));
                continue;
            };
            if doc_name == "dashboard" {
                on_dashboard.insert(u.metric.clone());
            }
            let keys = tag_keys(relative).unwrap_or_default();
            let mut used: Vec<(String, &str)> = Vec::new();
            used.extend(u.filter_keys.iter().map(|k| (k.clone(), "filters on")));
            used.extend(u.group_keys.iter().map(|k| (k.clone(), "groups by")));
            for var in &u.variables {
                match vars.get(var) {
                    Some(prefix) => used.push((prefix.clone(), "filters (template variable) on")),
                    None => out.push(format!("{path}: ${var} is not a template variable here")),
                }
            }
            for (key, how) in used {
                if !keys.contains(&key.as_str()) {
                    out.push(format!(
                        "{path}: {how} {key:?}, which {} does not carry (it has: {keys:?})",
                        u.metric
                    ));
                }
            }
        }
    }

    for full in catalogue.keys() {
        if !on_dashboard.contains(full) {
            out.push(format!("dashboard: {full} appears on no widget"));
        }
    }
    out
}

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/datadog")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn every_catalogue_family_has_known_tags() {
    for metric in CATALOGUE {
        let name = metric.name;
        assert!(
            tag_keys(name).is_some(),
            "{name}: add its tag keys to tests/datadog.rs"
        );
    }
}

#[test]
fn dashboard_and_monitors_match_the_catalogue() {
    let found = problems(&load("dashboard.json"), &load("monitors.json"));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_monitor_queries_a_metric_of_ours() {
    let monitors = load("monitors.json");
    let list = monitors.as_array().expect("monitors.json is an array");
    assert!(!list.is_empty());
    for m in list {
        let q = m["query"].as_str().expect("each monitor has a query");
        assert!(
            !parse_query(q).expect("parses").is_empty(),
            "{}: queries none of our metrics",
            m["name"]
        );
    }
}

#[test]
fn query_parser_reads_filters_groups_and_monitor_syntax() {
    let uses = parse_query(
        "max(last_15m):sum:circle.nomad.server_agent.capacity.available.cpu{*} by {datacenter,node_pool} / \
         sum:circle.nomad.server_agent.capacity.total.cpu{$datacenter, !node_class:x} by {node_pool} < 0.1",
    )
    .unwrap();
    assert_eq!(
        uses,
        [
            MetricUse {
                metric: "circle.nomad.server_agent.capacity.available.cpu".into(),
                group_keys: vec!["datacenter".into(), "node_pool".into()],
                ..MetricUse::default()
            },
            MetricUse {
                metric: "circle.nomad.server_agent.capacity.total.cpu".into(),
                filter_keys: vec!["node_class".into()],
                variables: vec!["datacenter".into()],
                group_keys: vec!["node_pool".into()],
            },
        ]
    );
    // A filter without grouping, followed by more text that is not `by`.
    let uses =
        parse_query("sum:circle.nomad.server_agent.nodes.ready{drain:true}.rollup(max)").unwrap();
    assert_eq!(uses[0].filter_keys, ["drain"]);
    assert!(uses[0].group_keys.is_empty());
    // Not ours: ignored. Ours without a filter, or in a syntax not read: refused.
    assert!(parse_query("avg:system.cpu.user{*}").unwrap().is_empty());
    assert!(parse_query("avg:circle.nomad.server_agent.jobs.dead").is_err());
    assert!(parse_query("avg:circle.nomad.server_agent.nodes.down{a:b AND c:d}").is_err());
    assert_eq!(
        names_in_text(
            "`circle.nomad.client_agent.poll_failure`, circle.nomad.x. and circle.nomad.*"
        ),
        [
            "circle.nomad.client_agent.poll_failure",
            "circle.nomad.x",
            "circle.nomad.*"
        ]
    );
}

/// The check must be able to fail: each broken copy of the real files is
/// caught, for the right reason.
#[test]
fn broken_copies_are_caught() {
    let dashboard = serde_json::to_string(&load("dashboard.json")).unwrap();
    let monitors = serde_json::to_string(&load("monitors.json")).unwrap();
    let broken = |in_dashboard: bool, from: &str, to: &str, expect: &str| {
        let text = if in_dashboard { &dashboard } else { &monitors };
        assert!(
            text.contains(from),
            "{from:?} is no longer in the file: update this test"
        );
        let edited: Value = serde_json::from_str(&text.replacen(from, to, 1)).unwrap();
        let found = if in_dashboard {
            problems(&edited, &load("monitors.json"))
        } else {
            problems(&load("dashboard.json"), &edited)
        };
        assert!(
            found.iter().any(|p| p.contains(expect)),
            "{from:?} → {to:?}: expected a problem with {expect:?}, got {found:#?}"
        );
    };
    // A name that is not in the catalogue.
    broken(
        true,
        "server_agent.jobs.pending{*}",
        "server_agent.jobs.pendin{*}",
        "jobs.pendin is not in the catalogue",
    );
    // Grouping by a tag the metric does not carry.
    broken(
        true,
        "capacity.available.cpu{$datacenter,$node_pool,$node_class} by {datacenter,node_pool}",
        "capacity.available.cpu{$datacenter,$node_pool,$node_class} by {node_name}",
        "groups by \"node_name\"",
    );
    // Filtering on one.
    broken(
        true,
        "nodes.down{$datacenter,$node_pool,$node_class}",
        "nodes.down{$datacenter,status:down}",
        "filters on \"status\"",
    );
    // A template variable on a metric without that tag, and an undefined one.
    broken(
        true,
        "jobs.dead{*}",
        "jobs.dead{$datacenter}",
        "filters (template variable) on \"datacenter\"",
    );
    broken(
        true,
        "jobs.dead{*}",
        "jobs.dead{$region}",
        "$region is not a template variable",
    );
    // A filter this parser does not read.
    broken(
        true,
        "jobs.dead{*}",
        "jobs.dead{a:b OR c:d}",
        "is not read here",
    );
    // A catalogue metric that no widget shows any more.
    let without_iops = dashboard.replace("resources.used.iops", "resources.used.disk");
    let found = problems(
        &serde_json::from_str(&without_iops).unwrap(),
        &load("monitors.json"),
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("client_agent.resources.used.iops appears on no widget")),
        "{found:#?}"
    );
    // Monitors: a wrong name, a wrong grouping, a name mentioned in a message.
    broken(
        false,
        "server_agent.nodes.down{*}",
        "server_agent.node.down{*}",
        "node.down is not in the catalogue",
    );
    broken(
        false,
        "server_agent.nodes.down{*} by {datacenter,node_pool}",
        "server_agent.nodes.down{*} by {node_name}",
        "groups by \"node_name\"",
    );
    broken(
        true,
        "Metrics: circle.nomad.*",
        "Metrics: circle.nomad.agent.*",
        "mentions circle.nomad.agent.*",
    );
    broken(
        false,
        "No circle.nomad.server_agent.poll_failure",
        "No circle.nomad.server_agent.poll_failures",
        "mentions circle.nomad.server_agent.poll_failures",
    );
}
