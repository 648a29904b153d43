//! The list queries of both roles (`--server`'s three lists, `--client`'s
//! node allocations): which path, which parameters, paged or not, on which
//! Nomad version (asked of `Features`, never of the version
//! itself). Callers fold the answers into their own aggregates; nothing
//! here knows a gauge. See `docs/nomad-api.md` for the facts.

use std::time::Duration;

use super::features::{Features, JobNamespaces};
use super::list::{Block, ListQuery};

/// Deadline for one page of a `--server` list read: 100k jobs are ~60 MB,
/// more than one poll interval's worth on a slow link. Liveness is checked
/// every poll anyway (`/v1/status/leader`).
pub const LIST_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// go-bexpr over the full `Allocation`: the non-terminal ones.
pub const NON_TERMINAL_FILTER: &str = r#"DesiredStatus == "run" and ClientStatus != "complete" and ClientStatus != "failed" and ClientStatus != "lost""#;

/// Operator settings that shape the `--server` queries.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// `NOMAD_NAMESPACE`: only this namespace (else all).
    pub namespace: Option<String>,
    /// `--page-size`, where the version pages.
    pub per_page: Option<u32>,
    /// `--stale`: any server may answer.
    pub stale: bool,
}

/// One list read, without its blocking part: the watcher adds that.
#[derive(Debug, Clone)]
pub struct ListPlan {
    /// Short name for logs (`jobs`, `nodes`, `allocations`).
    pub name: &'static str,
    pub path: String,
    pub params: Vec<(&'static str, String)>,
    pub per_page: Option<u32>,
    /// `?stale` was asked: a lower index only means a server a little
    /// behind, not a snapshot restore.
    pub stale: bool,
    /// A 403 turns the list off instead of failing the poll.
    pub optional: bool,
    /// Deadline per page (`None`: the client's request timeout).
    pub timeout: Option<Duration>,
    /// When the read lists nothing, read this instead (version unknown:
    /// 0.7–0.11 answer `namespace=*` with `[]`).
    pub fallback_if_empty: Option<Box<ListPlan>>,
}

impl ListPlan {
    fn new(name: &'static str, path: impl Into<String>, opts: &QueryOptions) -> Self {
        let mut params = Vec::new();
        if opts.stale {
            params.push(("stale", String::new()));
        }
        Self {
            name,
            path: path.into(),
            params,
            per_page: None,
            stale: opts.stale,
            optional: false,
            timeout: Some(LIST_READ_TIMEOUT),
            fallback_if_empty: None,
        }
    }

    /// The HTTP query, a blocking one when `block` is set.
    #[must_use]
    pub fn query(&self, block: Option<Block>) -> ListQuery<'_> {
        let mut query = ListQuery::new(&self.path);
        query.params.clone_from(&self.params);
        query.per_page = self.per_page;
        query.block = block;
        query.timeout = self.timeout;
        query
    }

    /// `GET /v1/namespaces`: watched while following the event stream on
    /// versions whose `namespace=*` covers only the namespaces that existed
    /// at subscribe time (`docs/nomad-events.md`).
    #[must_use]
    pub fn namespaces(opts: &QueryOptions) -> Self {
        let mut plan = Self::new("namespaces", "/v1/namespaces", opts);
        plan.optional = true;
        plan
    }

    /// `GET /v1/node/<id>/allocations` (`--client`): every allocation of the
    /// node, terminal ones included until GC, with the client's request
    /// timeout (one node's list is small).
    #[must_use]
    pub fn node_allocations(node_id: &str) -> Self {
        let mut plan = Self::new(
            "node allocations",
            format!("/v1/node/{node_id}/allocations"),
            &QueryOptions::default(),
        );
        plan.timeout = None;
        plan
    }
}

/// The lists `--server` reads on one Nomad version.
#[derive(Debug, Clone)]
pub struct ServerLists {
    /// `/v1/jobs`, every namespace the token can see (or `NOMAD_NAMESPACE`).
    pub jobs: ListPlan,
    /// `/v1/nodes`, with resources where the version lists them.
    pub nodes: ListPlan,
    /// `/v1/allocations` with resources, only the non-terminal ones where
    /// the version filters; `None` before 1.0 (no resources in the list).
    pub allocations: Option<ListPlan>,
}

impl ServerLists {
    #[must_use]
    pub fn new(features: &Features, opts: &QueryOptions) -> Self {
        let per_page = opts.per_page.filter(|_| features.paging);

        let mut jobs = ListPlan::new("jobs", "/v1/jobs", opts);
        jobs.per_page = per_page;
        match (&opts.namespace, features.job_namespaces) {
            (Some(ns), _) => jobs.params.push(("namespace", ns.clone())),
            // 0.5–0.6 ignore `namespace`; 0.7–0.11 read `*` as a literal
            // namespace name and answer `[]`: list the default namespace.
            (None, JobNamespaces::None | JobNamespaces::Literal) => {}
            (None, JobNamespaces::Wildcard) => jobs.params.push(("namespace", "*".into())),
            (None, JobNamespaces::WildcardOrDefault) => {
                let default = jobs.clone();
                jobs.params.push(("namespace", "*".into()));
                jobs.fallback_if_empty = Some(Box::new(default));
            }
        }

        let mut nodes = ListPlan::new("nodes", "/v1/nodes", opts);
        nodes.per_page = per_page;
        nodes.optional = true;
        if features.list_resources {
            nodes.params.push(("resources", "true".into()));
        }

        let allocations = features.list_resources.then(|| {
            let mut allocs = ListPlan::new("allocations", "/v1/allocations", opts);
            allocs.optional = true;
            allocs.params.extend([
                ("namespace", "*".into()),
                ("resources", "true".into()),
                ("task_states", "false".into()),
            ]);
            if features.filter {
                allocs.params.push(("filter", NON_TERMINAL_FILTER.into()));
            }
            // Not paged: allocation page tokens are broken before 1.10.2
            // (GH-25435).
            allocs
        });
        Self {
            jobs,
            nodes,
            allocations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::NomadVersion;

    fn lists(version: &str, opts: &QueryOptions) -> ServerLists {
        ServerLists::new(&Features::for_version(NomadVersion::parse(version)), opts)
    }

    fn param<'a>(plan: &'a ListPlan, key: &str) -> Option<&'a str> {
        plan.params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn job_namespaces_per_version() {
        let opts = QueryOptions::default();
        assert_eq!(param(&lists("0.5.6", &opts).jobs, "namespace"), None);
        assert_eq!(param(&lists("0.8.7", &opts).jobs, "namespace"), None);
        assert_eq!(param(&lists("1.4.0", &opts).jobs, "namespace"), Some("*"));
        let unknown = ServerLists::new(&Features::for_version(None), &opts);
        assert_eq!(param(&unknown.jobs, "namespace"), Some("*"));
        let fallback = unknown.jobs.fallback_if_empty.expect("a fallback");
        assert_eq!(param(&fallback, "namespace"), None);
        let one = QueryOptions {
            namespace: Some("ci".into()),
            ..QueryOptions::default()
        };
        assert_eq!(param(&lists("0.8.7", &one).jobs, "namespace"), Some("ci"));
    }

    #[test]
    fn paging_resources_and_filter_per_version() {
        let opts = QueryOptions {
            per_page: Some(500),
            stale: true,
            ..QueryOptions::default()
        };
        let old = lists("0.8.7", &opts);
        assert_eq!(old.jobs.per_page, None);
        assert_eq!(param(&old.nodes, "resources"), None);
        assert!(old.allocations.is_none());
        let new = lists("1.4.0", &opts);
        assert_eq!(new.jobs.per_page, Some(500));
        assert_eq!(new.nodes.per_page, Some(500));
        assert_eq!(param(&new.nodes, "resources"), Some("true"));
        let allocs = new.allocations.expect("1.0+ lists allocations");
        assert_eq!(allocs.per_page, None, "allocation page tokens are broken");
        assert_eq!(param(&allocs, "filter"), Some(NON_TERMINAL_FILTER));
        assert_eq!(param(&allocs, "stale"), Some(""));
        let no_filter = lists("1.2.0", &opts).allocations.expect("1.0+");
        assert_eq!(param(&no_filter, "filter"), None);
    }
}
