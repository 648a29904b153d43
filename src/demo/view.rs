//! The demo's live view of what the daemon sent: DogStatsD datagrams parsed
//! back into lines, gathered into one batch per role (a batch ends with the
//! role's `poll_failure`, which the daemon sends last), and rendered as one
//! row per metric family and tag set, with the change since the previous
//! frame. Knows the DogStatsD text format and the metric names' shape
//! (`circle.nomad.<role>_agent.<family>.<member>`), not Nomad.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::gauges::PREFIX;
use crate::role::Role;

/// Rows shown per family at most; the rest are counted on one line.
pub const MAX_ROWS_PER_FAMILY: usize = 6;

/// One DogStatsD gauge line: `name:value|g|#k:v,k2:v2`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub value: f64,
    /// `k:v` items in the order sent.
    pub tags: Vec<String>,
}

/// Parses one line strictly; `None` for anything that is not a gauge.
#[must_use]
pub fn parse_line(text: &str) -> Option<Line> {
    let mut fields = text.split('|');
    let (name, value) = fields.next()?.rsplit_once(':')?;
    if fields.next()? != "g" || name.is_empty() || name.contains([' ', ',', '#']) {
        return None;
    }
    let value: f64 = value.parse().ok().filter(|v: &f64| v.is_finite())?;
    let tags = match fields.next() {
        None => Vec::new(),
        Some(t) => {
            let t = t.strip_prefix('#')?;
            let tags: Vec<String> = t.split(',').map(str::to_owned).collect();
            if tags.iter().any(|t| t.is_empty() || t.contains(' ')) {
                return None;
            }
            tags
        }
    };
    if fields.next().is_some() {
        return None;
    }
    Some(Line {
        name: name.to_owned(),
        value,
        tags,
    })
}

/// The role a metric name belongs to.
#[must_use]
pub fn role_of(name: &str) -> Option<Role> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('.')?;
    if rest.starts_with("client_agent.") {
        Some(Role::Client)
    } else if rest.starts_with("server_agent.") {
        Some(Role::Server)
    } else {
        None
    }
}

/// Lines gathered per role until each role's batch closes.
#[derive(Debug, Default)]
pub struct Batches {
    open: HashMap<Role, Vec<Line>>,
    /// The last complete batch of each role.
    pub closed: BTreeMap<Role, Vec<Line>>,
    /// Roles whose batch closed since `take_fresh`.
    fresh: Vec<Role>,
    /// Lines that did not parse (shown in the view: there should be none).
    pub malformed: u64,
}

impl Batches {
    /// Adds every line of one datagram.
    pub fn feed(&mut self, datagram: &str) {
        for text in datagram.lines().filter(|l| !l.is_empty()) {
            let Some(line) = parse_line(text) else {
                self.malformed += 1;
                continue;
            };
            let Some(role) = role_of(&line.name) else {
                self.malformed += 1;
                continue;
            };
            let closes = line.name == format!("{PREFIX}.{}", role.health_names().poll_failure);
            self.open.entry(role).or_default().push(line);
            if closes {
                let batch = self.open.remove(&role).unwrap_or_default();
                self.closed.insert(role, batch);
                if !self.fresh.contains(&role) {
                    self.fresh.push(role);
                }
            }
        }
    }

    /// How many roles closed a batch since the last `take_fresh`.
    #[must_use]
    pub fn fresh(&self) -> usize {
        self.fresh.len()
    }

    /// Marks every closed batch as shown.
    pub fn take_fresh(&mut self) {
        self.fresh.clear();
    }
}

/// One line of a batch within its family: (tags beyond the role's common
/// ones, member, value).
type Item<'a> = (Vec<&'a str>, &'a str, f64);

/// One row of the view: a family (`jobs`, `resources.used`, …) under one
/// tag set, with its members' values (`pending`, `cpu`, …).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    family: String,
    tags: String,
    members: Vec<(String, f64)>,
}

/// What one frame shows per role, and the tags every line of the role
/// carries (shown once in its heading).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    roles: Vec<(Role, Vec<String>, Vec<Row>)>,
}

impl Frame {
    /// Groups the last batch of each role into rows.
    #[must_use]
    pub fn from_batches(batches: &Batches) -> Self {
        let mut roles = Vec::new();
        for (&role, lines) in &batches.closed {
            let common: Vec<String> = lines
                .first()
                .map(|first| {
                    first
                        .tags
                        .iter()
                        .filter(|t| lines.iter().all(|l| l.tags.contains(t)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            // The lines of each family, in the order sent.
            let mut families: Vec<(&str, Vec<Item<'_>>)> = Vec::new();
            for line in lines {
                let rel = line
                    .name
                    .strip_prefix(PREFIX)
                    .and_then(|n| n.strip_prefix('.'))
                    .and_then(|n| n.split_once('.'))
                    .map_or(line.name.as_str(), |(_, rest)| rest);
                // Health gauges (`poll_failure`, …) form one `health` row.
                let (family, member) = rel.rsplit_once('.').unwrap_or(("health", rel));
                let tags: Vec<&str> = line
                    .tags
                    .iter()
                    .filter(|t| !common.contains(t))
                    .map(String::as_str)
                    .collect();
                match families.iter_mut().find(|(f, _)| *f == family) {
                    Some((_, items)) => items.push((tags, member, line.value)),
                    None => families.push((family, vec![(tags, member, line.value)])),
                }
            }
            let mut rows: Vec<Row> = Vec::new();
            for (family, items) in families {
                // A family with several tag sets is summed per its first tag
                // (census per datacenter, jobs per type): counts and
                // capacities add up, and the screen stays small.
                let rolled = items.windows(2).any(|w| w[0].0 != w[1].0);
                let first = rows.len();
                for (tags, member, value) in &items {
                    let key = if rolled {
                        tags.first().copied().unwrap_or_default().to_owned()
                    } else {
                        tags.join(" ")
                    };
                    let row = match rows[first..].iter_mut().find(|r| r.tags == key) {
                        Some(row) => row,
                        None => {
                            rows.push(Row {
                                family: family.to_owned(),
                                tags: key,
                                members: Vec::new(),
                            });
                            let last = rows.len() - 1;
                            &mut rows[last]
                        }
                    };
                    match row.members.iter_mut().find(|(m, _)| m == member) {
                        Some((_, sum)) => *sum += value,
                        None => row.members.push(((*member).to_owned(), *value)),
                    }
                }
            }
            roles.push((role, common, rows));
        }
        Self { roles }
    }

    fn value(&self, role: Role, family: &str, tags: &str, member: &str) -> Option<f64> {
        let (_, _, rows) = self.roles.iter().find(|(r, _, _)| *r == role)?;
        let row = rows.iter().find(|r| r.family == family && r.tags == tags)?;
        row.members
            .iter()
            .find(|(m, _)| m == member)
            .map(|(_, v)| *v)
    }

    /// The frame as text; changes against `prev` are shown as `(+2)`.
    #[must_use]
    pub fn render(&self, prev: Option<&Frame>) -> String {
        let mut out = String::new();
        for (role, common, rows) in &self.roles {
            let _ = write!(out, "{role} role ({PREFIX}.{role}_agent.*)");
            if !common.is_empty() {
                let _ = write!(out, "  {}", common.join(" "));
            }
            out.push('\n');
            let width = rows.iter().map(|r| r.family.len()).max().unwrap_or(0);
            let mut shown: HashMap<&str, usize> = HashMap::new();
            for row in rows {
                let count = shown.entry(row.family.as_str()).or_default();
                *count += 1;
                if *count > MAX_ROWS_PER_FAMILY {
                    continue;
                }
                let _ = write!(out, "  {:width$}", row.family);
                if !row.tags.is_empty() {
                    let _ = write!(out, "  [{}]", row.tags);
                }
                for (member, value) in &row.members {
                    let _ = write!(out, "  {member} {}", number(*value));
                    // Timings change every poll; their deltas are noise.
                    let noisy = member.ends_with("_ms") || member.ends_with("_age_s");
                    let before = prev.and_then(|p| p.value(*role, &row.family, &row.tags, member));
                    match before {
                        Some(b) if !noisy && b != *value => {
                            let d = *value - b;
                            let sign = if d > 0.0 { "+" } else { "" };
                            let _ = write!(out, " ({sign}{})", number(d));
                        }
                        None if prev.is_some() && !noisy => out.push_str(" (new)"),
                        _ => {}
                    }
                }
                out.push('\n');
            }
            for (family, count) in shown {
                if count > MAX_ROWS_PER_FAMILY {
                    let _ = writeln!(
                        out,
                        "  {family:width$}  … {} more tag sets",
                        count - MAX_ROWS_PER_FAMILY
                    );
                }
            }
        }
        out
    }
}

/// `7`, `-2`, `0.5`: integers without a fraction.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dogstatsd_gauges_strictly() {
        assert_eq!(
            parse_line("circle.nomad.server_agent.jobs.running:7|g"),
            Some(Line {
                name: "circle.nomad.server_agent.jobs.running".into(),
                value: 7.0,
                tags: vec![]
            })
        );
        let l = parse_line("a.b:1.5|g|#drain:false,status:ready").unwrap();
        assert_eq!(l.tags, ["drain:false", "status:ready"]);
        for bad in [
            "a.b:1|c",
            "a.b|g",
            "a b:1|g",
            "a:x|g",
            "a:1|g|tags",
            "a:1|g|#",
            "a:NaN|g",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn batches_close_on_poll_failure_and_frames_show_changes() {
        let mut b = Batches::default();
        b.feed("circle.nomad.server_agent.jobs.pending:1|g\ncircle.nomad.server_agent.jobs.running:5|g");
        assert!(b.closed.is_empty(), "not closed before poll_failure");
        b.feed("circle.nomad.server_agent.poll_failure:0|g");
        b.feed(
            "circle.nomad.client_agent.resources.used.cpu:500|g|#drain:false,node_name:n1\n\
             circle.nomad.client_agent.poll_failure:0|g|#node_name:n1",
        );
        assert_eq!(b.fresh(), 2);
        b.take_fresh();
        assert_eq!(b.fresh(), 0);
        let first = Frame::from_batches(&b);
        b.feed("circle.nomad.server_agent.jobs.pending:0|g\ncircle.nomad.server_agent.jobs.running:7|g\ncircle.nomad.server_agent.poll_failure:0|g");
        let second = Frame::from_batches(&b);
        let text = second.render(Some(&first));
        assert!(
            text.contains("  jobs    pending 0 (-1)  running 7 (+2)\n"),
            "{text}"
        );
        assert!(
            text.contains("client role") && text.contains("node_name:n1"),
            "{text}"
        );
        assert!(
            text.contains("resources.used  [drain:false]  cpu 500\n"),
            "{text}"
        );
        assert_eq!(b.malformed, 0);
        b.feed("garbage");
        assert_eq!(b.malformed, 1);
    }
}
