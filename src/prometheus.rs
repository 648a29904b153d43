//! `--prometheus-listen`: the gauges of every role's latest poll, served on
//! `GET /metrics` in the Prometheus text exposition format 0.0.4. No Nomad,
//! no cadence and no clock here: the pipeline publishes each role's batch,
//! this module renders it on request.
//!
//! Which series are served: each role's latest batch (the very `Vec<Gauge>`
//! the pipeline hands to DogStatsD, published at the same point) replaces
//! that role's previous one. A series absent from the latest poll is gone
//! from `/metrics` (Prometheus marks it stale), exactly as DogStatsD stops
//! receiving it; the families the mapping zero-fills (census, capacity,
//! `jobs_by_type`) arrive as 0 through the series memory, here as there. A
//! failed poll's batch is only the health gauges, so no stale values are
//! served. A role that has not finished a poll yet serves nothing.
//!
//! Scrapes never wait on a poll: the lock guards only the swap of a
//! reference-counted batch; rendering works on the snapshot, outside it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;

use crate::gauges::{self, Gauge, Metric, PREFIX};
use crate::listen::{Endpoint, Reply};
use crate::role::Role;

/// `Content-Type` of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How one catalogue metric is exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// `circle_nomad_…`: only `[a-zA-Z0-9_:]`.
    pub name: String,
    /// The catalogue help sentence and the unit, escaped for `# HELP`.
    pub help: String,
    /// Sent values are divided by this (1000 for a metric in ms, which
    /// Prometheus gets in seconds).
    pub divisor: f64,
}

impl Family {
    /// The family of `metric`: the full DogStatsD name with every character
    /// outside `[a-zA-Z0-9_:]` (the dots) made `_`. Prometheus' base unit
    /// for time is the second, and its linter rejects `_ms` and `_s`: a
    /// metric in `ms` ends in `_seconds` with its value in seconds, one in
    /// `s` ends in `_seconds` with its value unchanged.
    #[must_use]
    pub fn of(metric: &Metric) -> Self {
        let mut name: String = format!("{PREFIX}.{}", metric.name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut divisor = 1.0;
        let mut unit = metric.unit;
        let base = match unit {
            "ms" => Some(("_ms", 1000.0)),
            "s" => Some(("_s", 1.0)),
            _ => None,
        };
        if let Some((suffix, by)) = base {
            if let Some(stem) = name.strip_suffix(suffix) {
                name = format!("{stem}_seconds");
                divisor = by;
                unit = "seconds";
            }
        }
        let mut help = metric.help.to_owned();
        if !unit.is_empty() {
            help = format!("{help} (unit: {unit})");
        }
        Self {
            name,
            help: escape_help(&help),
            divisor,
        }
    }
}

/// A label name Prometheus accepts, from a tag key: every character outside
/// `[a-zA-Z0-9_]` becomes `_`, a leading digit gets a `_` before it, and a
/// leading `__` (reserved for Prometheus itself) is cut to one `_`.
#[must_use]
pub fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    if name.starts_with("__") {
        let rest = name.trim_start_matches('_').to_owned();
        name = format!("_{rest}");
    }
    name
}

/// A label value as the text format needs it: `\` `"` and newline escaped.
#[must_use]
pub fn escape_label_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `# HELP` text: `\` and newline escaped.
fn escape_help(raw: &str) -> String {
    raw.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The latest batch of every role, rendered on scrape.
#[derive(Debug)]
pub struct Exposition {
    /// Catalogue name → family, for every catalogue metric.
    families: HashMap<&'static str, Family>,
    /// `--tag`/`DD_TAGS` as (label name, escaped value), first key wins.
    global_labels: Vec<(String, String)>,
    batches: Mutex<BTreeMap<Role, Arc<[Gauge]>>>,
}

impl Exposition {
    /// An empty exposition; `global_tags` become labels on every sample.
    #[must_use]
    pub fn new(global_tags: &[(String, String)]) -> Arc<Self> {
        let mut global_labels: Vec<(String, String)> = Vec::with_capacity(global_tags.len());
        for (key, value) in global_tags {
            let name = label_name(key);
            if !global_labels.iter().any(|(n, _)| *n == name) {
                global_labels.push((name, escape_label_value(value)));
            }
        }
        Arc::new(Self {
            families: gauges::CATALOGUE
                .iter()
                .map(|m| (m.name, Family::of(m)))
                .collect(),
            global_labels,
            batches: Mutex::new(BTreeMap::new()),
        })
    }

    /// Replaces `role`'s series with `gauges` (the batch just emitted).
    pub fn publish(&self, role: Role, gauges: &[Gauge]) {
        let batch: Arc<[Gauge]> = gauges.into();
        // A poisoned lock only means a scrape panicked mid-swap; the map is
        // still whole, so keep serving.
        let mut batches = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        batches.insert(role, batch);
    }

    /// The text exposition of the latest batches: families in catalogue
    /// order, each with one `# HELP` and one `# TYPE … gauge`, then its
    /// samples in the order they were sent. Empty before the first poll.
    #[must_use]
    pub fn render(&self) -> String {
        let snapshot: Vec<Arc<[Gauge]>> = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut by_name: HashMap<&'static str, Vec<&Gauge>> = HashMap::new();
        let mut order: Vec<&'static str> = Vec::new();
        for gauge in snapshot.iter().flat_map(|b| b.iter()) {
            by_name
                .entry(gauge.name)
                .or_insert_with(|| {
                    order.push(gauge.name);
                    Vec::new()
                })
                .push(gauge);
        }
        // Catalogue order first; a name outside it (a bug) still shows.
        let position = |name: &str| {
            gauges::CATALOGUE
                .iter()
                .position(|m| m.name == name)
                .unwrap_or(usize::MAX)
        };
        order.sort_by_key(|name| position(name));
        let mut out = String::new();
        for name in order {
            let family = self.families.get(name).cloned().unwrap_or_else(|| {
                Family::of(&Metric {
                    name,
                    unit: "",
                    help: "",
                })
            });
            if !family.help.is_empty() {
                let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            }
            let _ = writeln!(out, "# TYPE {} gauge", family.name);
            for gauge in by_name.get(name).into_iter().flatten() {
                self.sample(&mut out, &family, gauge);
            }
        }
        out
    }

    /// One sample line: the gauge's tags, then the global labels whose name
    /// the gauge does not already carry (its own tag is the more specific).
    fn sample(&self, out: &mut String, family: &Family, gauge: &Gauge) {
        out.push_str(&family.name);
        let mut names: Vec<String> = Vec::with_capacity(gauge.tags.len());
        let mut labels: Vec<(String, String)> = Vec::new();
        for tag in &gauge.tags {
            let name = label_name(tag.key);
            if !names.contains(&name) {
                labels.push((name.clone(), escape_label_value(tag.value.as_str())));
                names.push(name);
            }
        }
        for (name, value) in &self.global_labels {
            if !names.contains(name) {
                labels.push((name.clone(), value.clone()));
            }
        }
        if !labels.is_empty() {
            out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{name}=\"{value}\"");
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", gauge.value / family.divisor);
    }
}

impl Endpoint for Exposition {
    fn path(&self) -> &'static str {
        "/metrics"
    }

    fn reply(&self) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: CONTENT_TYPE,
            body: self.render(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gauges::{Tag, TagValue};

    fn tag(key: &'static str, value: &str) -> Tag {
        Tag::new(key, TagValue::new(value).unwrap())
    }

    #[test]
    fn empty_before_the_first_poll() {
        assert_eq!(Exposition::new(&[]).render(), "");
    }

    #[test]
    fn names_help_type_once_per_family_and_labels() {
        let expo = Exposition::new(&[("env".into(), "prod".into())]);
        expo.publish(
            Role::Server,
            &[
                Gauge::count(
                    gauges::SERVER_JOBS_BY_TYPE_RUNNING,
                    3,
                    vec![tag("type", "service"), tag("namespace", "default")],
                ),
                Gauge::count(
                    gauges::SERVER_JOBS_BY_TYPE_PENDING,
                    1,
                    vec![tag("type", "batch"), tag("namespace", "ci")],
                ),
                Gauge::count(
                    gauges::SERVER_JOBS_BY_TYPE_RUNNING,
                    2,
                    vec![tag("type", "batch"), tag("namespace", "ci")],
                ),
                Gauge::count(gauges::SERVER_JOBS_RUNNING, 5, vec![]),
                Gauge::new(gauges::SERVER_POLL_DURATION_MS, 12.5, vec![]).unwrap(),
                Gauge::poll_failure(gauges::SERVER_POLL_FAILURE, false, vec![]),
            ],
        );
        let expected = "\
# HELP circle_nomad_server_agent_poll_failure 1 if the last --server poll failed, else 0. (unit: 0/1)
# TYPE circle_nomad_server_agent_poll_failure gauge
circle_nomad_server_agent_poll_failure{env=\"prod\"} 0
# HELP circle_nomad_server_agent_jobs_running Jobs in status running, cluster-wide. (unit: jobs)
# TYPE circle_nomad_server_agent_jobs_running gauge
circle_nomad_server_agent_jobs_running{env=\"prod\"} 5
# HELP circle_nomad_server_agent_poll_duration_seconds Wall time of the last --server poll. (unit: seconds)
# TYPE circle_nomad_server_agent_poll_duration_seconds gauge
circle_nomad_server_agent_poll_duration_seconds{env=\"prod\"} 0.0125
# HELP circle_nomad_server_agent_jobs_by_type_pending Pending jobs per job type and namespace. (unit: jobs)
# TYPE circle_nomad_server_agent_jobs_by_type_pending gauge
circle_nomad_server_agent_jobs_by_type_pending{type=\"batch\",namespace=\"ci\",env=\"prod\"} 1
# HELP circle_nomad_server_agent_jobs_by_type_running Running jobs per job type and namespace. (unit: jobs)
# TYPE circle_nomad_server_agent_jobs_by_type_running gauge
circle_nomad_server_agent_jobs_by_type_running{type=\"service\",namespace=\"default\",env=\"prod\"} 3
circle_nomad_server_agent_jobs_by_type_running{type=\"batch\",namespace=\"ci\",env=\"prod\"} 2
";
        assert_eq!(expo.render(), expected);
    }

    #[test]
    fn every_catalogue_metric_gets_a_valid_name_and_help() {
        for metric in gauges::CATALOGUE {
            let family = Family::of(metric);
            let n = &family.name;
            assert!(n.starts_with("circle_nomad_"), "{n}");
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{n}"
            );
            assert!(!n.ends_with("_ms") && !n.ends_with("_s"), "{n}");
            assert!(family.help.starts_with(metric.help), "{n}");
        }
        let jobs = gauges::metric(gauges::SERVER_JOBS_RUNNING).unwrap();
        assert_eq!(
            Family::of(jobs).name,
            "circle_nomad_server_agent_jobs_running"
        );
        let age = Family::of(gauges::metric(gauges::CLIENT_LAST_SUCCESS_AGE_S).unwrap());
        assert_eq!(
            age.name,
            "circle_nomad_client_agent_last_success_age_seconds"
        );
        assert_eq!(age.divisor, 1.0);
    }

    #[test]
    fn label_names_and_values_are_escaped() {
        assert_eq!(label_name("node_id"), "node_id");
        assert_eq!(label_name("dd.internal.entity_id"), "dd_internal_entity_id");
        assert_eq!(label_name("team-a/b"), "team_a_b");
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name("__name__"), "_name__");
        assert_eq!(label_name("--x"), "_x");
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_help("back\\slash\nnew"), "back\\\\slash\\nnew");
    }

    #[test]
    fn global_labels_never_override_a_gauge_tag() {
        let expo = Exposition::new(&[
            ("datacenter".into(), "global".into()),
            ("dd.internal.entity_id".into(), "pod\"1\\".into()),
            ("dd-internal-entity-id".into(), "shadowed".into()),
        ]);
        expo.publish(
            Role::Client,
            &[Gauge::count(
                gauges::CLIENT_USED_CPU,
                250,
                vec![tag("datacenter", "dc1")],
            )],
        );
        let text = expo.render();
        assert!(
            text.ends_with(
                "circle_nomad_client_agent_resources_used_cpu\
                 {datacenter=\"dc1\",dd_internal_entity_id=\"pod\\\"1\\\\\"} 250\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_latest_batch_replaces_the_role_and_roles_are_independent() {
        let expo = Exposition::new(&[]);
        let ready = |n| Gauge::count(gauges::SERVER_NODES_READY, n, vec![tag("datacenter", "a")]);
        expo.publish(Role::Server, &[ready(2)]);
        expo.publish(
            Role::Client,
            &[Gauge::poll_failure(
                gauges::CLIENT_POLL_FAILURE,
                false,
                vec![],
            )],
        );
        assert!(expo.render().contains("nodes_ready{datacenter=\"a\"} 2\n"));
        // A failed poll: only the health gauges; the node census is gone.
        expo.publish(
            Role::Server,
            &[Gauge::poll_failure(
                gauges::SERVER_POLL_FAILURE,
                true,
                vec![],
            )],
        );
        let text = expo.render();
        assert!(!text.contains("nodes_ready"), "{text}");
        assert!(text.contains("circle_nomad_server_agent_poll_failure 1\n"));
        assert!(text.contains("circle_nomad_client_agent_poll_failure 0\n"));
    }
}
