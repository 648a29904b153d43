//! The one table of what each Nomad version can do. Every version quirk the
//! daemon (or the test fake) acts on is a field here, decided once from the
//! version `/v1/agent/self` reports; nothing else compares versions. Where a
//! response's own fields tell (legacy `Resources` vs `NodeResources`,
//! `NodePool`), the models decide by the fields instead and there is no entry.
//! The facts, with the Nomad change that introduced each, are in
//! `docs/nomad-api.md` and `docs/nomad-events.md`.

use super::model::NomadVersion;

/// How `/v1/jobs` reads `namespace=*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobNamespaces {
    /// 0.5–0.6: no namespaces; the parameter is ignored.
    None,
    /// 0.7–0.11: `*` is taken as a namespace's name and matches nothing; list
    /// without the parameter (the `default` namespace, the only one in OSS).
    Literal,
    /// 0.12+: `*` lists every namespace the token may read.
    Wildcard,
    /// Version unknown (the token may not read `/v1/agent/self`): ask for
    /// `*`, and list without it if that answers nothing.
    WildcardOrDefault,
}

/// How a version folds an allocation's lifecycle tasks into one figure
/// (`AllocatedResources.Comparable()` in `nomad/structs/structs.go`). S =
/// prestart sidecars, E = prestart ephemeral, M = main, Pstart/Pstop =
/// poststart/poststop tasks; `max` is per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleRules {
    /// 0.9–0.12: S + max(E, M); poststart and poststop are not counted.
    V0_11,
    /// 1.0.0–1.9.1: S + max(E, M, Pstop).
    V1_0,
    /// 1.9.2–1.9.3 (GH-24297): S + max(E, M + Pstart, Pstop).
    V1_9_2,
    /// 1.9.4+ (GH-24304): CPU of tasks with reserved cores is always added;
    /// the rest is max(S + M + Pstart, S + E, Pstop).
    V1_9_4,
}

/// How `/v1/event/stream` reads `namespace=*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamNamespaces {
    /// Before 1.0.12 / 1.1.6: literal, matches no namespaced event; one
    /// stream per namespace would be needed.
    Literal,
    /// 1.0.12 / 1.1.6 / 1.2.0 – 1.9.5: a true wildcard.
    Wildcard,
    /// 1.9.6 / 1.10.0+ (CVE-2025-0937): the namespaces that exist at
    /// subscribe time; a namespace created later needs a resubscribe.
    AtSubscribe,
}

/// What the event stream of one version sends (`docs/nomad-events.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFeatures {
    pub namespaces: StreamNamespaces,
    /// A `{}` right after subscribing (1.0.7 / 1.1.1+); before, headers
    /// arrive only with the first event or the 30 s heartbeat.
    pub initial_heartbeat: bool,
    /// Job purge and GC emit a Job event (1.7.5 / 1.8.0+); before, a
    /// deleted job simply stops appearing.
    pub job_deletions: bool,
    /// A deletion carries `"Deleted": true` (1.11.3 / 2.0.0+).
    pub deleted_flag: bool,
    /// A purge deletes the job's allocations with no Allocation event
    /// (1.5.13 / 1.6.6 / 1.7.3 / 1.8.0+).
    pub purge_drops_allocs: bool,
    /// Every client allocation update emits a full Node event per node
    /// (1.3.10 / 1.4.5 / 1.5.0+): the Node topic costs more than a relist.
    pub noisy_node_topic: bool,
    /// 1.11.2 answers the stream with an `HTTP/0.0` status line, which no
    /// HTTP client accepts: treat it as having no stream.
    pub broken_status_line: bool,
}

/// Everything version-dependent that the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// The version this was decided from; `None` when it is unknown, and
    /// then every field takes the newest behaviour.
    pub version: Option<NomadVersion>,
    pub job_namespaces: JobNamespaces,
    /// `/v1/nodes?resources=true` and `/v1/allocations?resources=true`
    /// (1.0+); before, the cluster-wide lists carry no resources.
    pub list_resources: bool,
    /// `filter` (go-bexpr) on list endpoints (1.3+).
    pub filter: bool,
    /// `per_page` / `next_token` on `/v1/jobs` and `/v1/nodes` (1.3+).
    /// Allocation page tokens are broken before 1.10.2 (GH-25435), so the
    /// allocation list is never paged.
    pub paging: bool,
    pub lifecycle: LifecycleRules,
    /// `/v1/event/stream` (1.0+); `None` before, or where unusable.
    pub stream: Option<StreamFeatures>,
}

/// True when `v` has a change that shipped in the first version of each
/// release line in `fixed` (ascending): every version from the last entry
/// on, and the listed lines from their patch on. A line before the last
/// entry that is not listed did not get the backport.
fn since(v: NomadVersion, fixed: &[(u32, u32, u32)]) -> bool {
    let Some(&(maj, min, pat)) = fixed.last() else {
        return false;
    };
    if v >= NomadVersion::new(maj, min, pat) {
        return true;
    }
    fixed
        .iter()
        .any(|&(maj, min, pat)| v.major == maj && v.minor == min && v.patch >= pat)
}

impl Features {
    /// The table row of `version` (`None`: unknown, newest behaviour).
    #[must_use]
    pub fn for_version(version: Option<NomadVersion>) -> Self {
        let Some(v) = version else {
            return Self {
                version: None,
                job_namespaces: JobNamespaces::WildcardOrDefault,
                ..Self::for_version(Some(NomadVersion::new(u32::MAX, 0, 0)))
            };
        };
        let at_least = |major, minor, patch| v >= NomadVersion::new(major, minor, patch);
        let job_namespaces = if !at_least(0, 7, 0) {
            JobNamespaces::None
        } else if !at_least(0, 12, 0) {
            JobNamespaces::Literal
        } else {
            JobNamespaces::Wildcard
        };
        let lifecycle = if !at_least(1, 0, 0) {
            LifecycleRules::V0_11
        } else if !at_least(1, 9, 2) {
            LifecycleRules::V1_0
        } else if !at_least(1, 9, 4) {
            LifecycleRules::V1_9_2
        } else {
            LifecycleRules::V1_9_4
        };
        let stream = at_least(1, 0, 0).then(|| StreamFeatures {
            namespaces: if since(v, &[(1, 9, 6), (1, 10, 0)]) {
                StreamNamespaces::AtSubscribe
            } else if since(v, &[(1, 0, 12), (1, 1, 6), (1, 2, 0)]) {
                StreamNamespaces::Wildcard
            } else {
                StreamNamespaces::Literal
            },
            initial_heartbeat: since(v, &[(1, 0, 7), (1, 1, 1)]),
            job_deletions: since(v, &[(1, 7, 5), (1, 8, 0)]),
            deleted_flag: since(v, &[(1, 11, 3), (2, 0, 0)]),
            purge_drops_allocs: since(v, &[(1, 5, 13), (1, 6, 6), (1, 7, 3), (1, 8, 0)]),
            noisy_node_topic: since(v, &[(1, 3, 10), (1, 4, 5), (1, 5, 0)]),
            broken_status_line: v.major == 1 && v.minor == 11 && v.patch == 2,
        });
        Self {
            version,
            job_namespaces,
            list_resources: at_least(1, 0, 0),
            filter: at_least(1, 3, 0),
            paging: at_least(1, 3, 0),
            lifecycle,
            stream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Features {
        Features::for_version(NomadVersion::parse(text))
    }

    #[test]
    fn job_namespaces_have_three_eras() {
        assert_eq!(of("0.5.6").job_namespaces, JobNamespaces::None);
        assert_eq!(of("0.6.3").job_namespaces, JobNamespaces::None);
        assert_eq!(of("0.7.0").job_namespaces, JobNamespaces::Literal);
        assert_eq!(of("0.11.8").job_namespaces, JobNamespaces::Literal);
        assert_eq!(of("0.12.0").job_namespaces, JobNamespaces::Wildcard);
        assert_eq!(
            Features::for_version(None).job_namespaces,
            JobNamespaces::WildcardOrDefault
        );
    }

    #[test]
    fn list_features_start_at_1_0_and_1_3() {
        assert!(!of("0.12.12").list_resources);
        assert!(of("1.0.0").list_resources);
        assert!(!of("1.2.16").filter && !of("1.2.16").paging);
        assert!(of("1.3.0").filter && of("1.3.0").paging);
        let unknown = Features::for_version(None);
        assert!(unknown.list_resources && unknown.filter && unknown.paging);
        assert_eq!(unknown.version, None);
    }

    #[test]
    fn lifecycle_rules_follow_the_version() {
        assert_eq!(of("0.11.3").lifecycle, LifecycleRules::V0_11);
        assert_eq!(of("1.0.0").lifecycle, LifecycleRules::V1_0);
        assert_eq!(of("1.9.1").lifecycle, LifecycleRules::V1_0);
        assert_eq!(of("1.9.2").lifecycle, LifecycleRules::V1_9_2);
        assert_eq!(of("1.9.3").lifecycle, LifecycleRules::V1_9_2);
        assert_eq!(of("1.9.4").lifecycle, LifecycleRules::V1_9_4);
        assert_eq!(
            Features::for_version(None).lifecycle,
            LifecycleRules::V1_9_4
        );
    }

    #[test]
    fn stream_namespace_eras_with_backports() {
        let ns = |v| of(v).stream.map(|s| s.namespaces);
        assert_eq!(ns("0.12.12"), None, "no stream before 1.0");
        assert_eq!(ns("1.0.11"), Some(StreamNamespaces::Literal));
        assert_eq!(ns("1.0.12"), Some(StreamNamespaces::Wildcard));
        assert_eq!(ns("1.1.5"), Some(StreamNamespaces::Literal));
        assert_eq!(ns("1.1.6"), Some(StreamNamespaces::Wildcard));
        assert_eq!(ns("1.2.0"), Some(StreamNamespaces::Wildcard));
        assert_eq!(ns("1.9.5"), Some(StreamNamespaces::Wildcard));
        assert_eq!(ns("1.9.6"), Some(StreamNamespaces::AtSubscribe));
        assert_eq!(ns("1.10.0"), Some(StreamNamespaces::AtSubscribe));
        assert_eq!(ns("2.0.5"), Some(StreamNamespaces::AtSubscribe));
    }

    #[test]
    fn stream_event_eras_with_backports() {
        let s = |v| of(v).stream.expect("1.0+ has a stream");
        assert!(!s("1.0.6").initial_heartbeat && s("1.0.7").initial_heartbeat);
        assert!(!s("1.1.0").initial_heartbeat && s("1.1.1").initial_heartbeat);
        assert!(!s("1.7.4").job_deletions && s("1.7.5").job_deletions);
        assert!(s("1.8.0").job_deletions);
        assert!(!s("1.6.9").job_deletions, "no backport to 1.6");
        assert!(!s("1.11.2").deleted_flag && s("1.11.3").deleted_flag);
        assert!(s("2.0.0").deleted_flag);
        assert!(!s("1.5.12").purge_drops_allocs && s("1.5.13").purge_drops_allocs);
        assert!(!s("1.6.5").purge_drops_allocs && s("1.6.6").purge_drops_allocs);
        assert!(!s("1.4.20").purge_drops_allocs, "no backport to 1.4");
        assert!(!s("1.3.9").noisy_node_topic && s("1.3.10").noisy_node_topic);
        assert!(!s("1.4.4").noisy_node_topic && s("1.4.5").noisy_node_topic);
        assert!(s("1.5.0").noisy_node_topic && !s("1.2.9").noisy_node_topic);
        assert!(s("1.11.2").broken_status_line);
        assert!(!s("1.11.1").broken_status_line && !s("1.11.3").broken_status_line);
        assert!(!s("2.0.0").broken_status_line);
    }
}
