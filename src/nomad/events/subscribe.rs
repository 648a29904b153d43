//! What to subscribe to, per version, and where to resume
//! (`docs/nomad-events.md` §1, §6, §7).

use crate::nomad::features::{StreamFeatures, StreamNamespaces};

/// Which namespaces one subscription covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceScope<'a> {
    /// Every namespace the token can read.
    All,
    One(&'a str),
}

/// One stream to open: its query parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub query: Vec<(&'static str, String)>,
    /// The namespace this stream is limited to when it is one of several
    /// (`Literal` versions); `None` when it covers the whole scope.
    pub namespace: Option<String>,
}

/// What to open, and what the caller must watch to keep it complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionPlan {
    pub subscriptions: Vec<Subscription>,
    /// A namespace created later is not covered until resubscribing (1.9.6 /
    /// 1.10.0+: `*` expands at subscribe time), or needs a stream of its own
    /// (before 1.0.12 / 1.1.6: `*` matches nothing). Watch
    /// `/v1/namespaces` when true.
    pub resubscribe_on_new_namespace: bool,
}

/// Options of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions<'a> {
    pub scope: NamespaceScope<'a>,
    /// Add `topic=Node` (worth it only where `noisy_node_topic` is false).
    pub nodes: bool,
    /// The last index applied from the stream; the request asks for the
    /// next one (`index=last+1`). `None`: from the oldest buffered item.
    pub last_index: Option<u64>,
}

/// The query of every stream to open (§1, §6). On `Literal` versions,
/// `All` needs one stream per namespace: `existing_namespaces` lists them
/// (ignored elsewhere); an empty list means the `default` namespace only.
#[must_use]
pub fn plan_subscriptions(
    features: &StreamFeatures,
    opts: &SubscribeOptions<'_>,
    existing_namespaces: &[String],
) -> SubscriptionPlan {
    let query = |namespace: &str, nodes: bool| {
        let mut q = vec![
            ("topic", "Job".to_owned()),
            ("topic", "Allocation".to_owned()),
        ];
        if nodes {
            q.push(("topic", "Node".to_owned()));
        }
        q.push(("namespace", namespace.to_owned()));
        if let Some(last) = opts.last_index {
            q.push(("index", resume_index(last).to_string()));
        }
        q
    };
    match (opts.scope, features.namespaces) {
        (NamespaceScope::One(ns), _) => SubscriptionPlan {
            subscriptions: vec![Subscription {
                query: query(ns, opts.nodes),
                namespace: None,
            }],
            resubscribe_on_new_namespace: false,
        },
        (NamespaceScope::All, StreamNamespaces::Literal) => {
            let default = ["default".to_owned()];
            let names = if existing_namespaces.is_empty() {
                &default[..]
            } else {
                existing_namespaces
            };
            SubscriptionPlan {
                // Node events pass every namespace filter: ask for them once.
                subscriptions: names
                    .iter()
                    .enumerate()
                    .map(|(i, ns)| Subscription {
                        query: query(ns, opts.nodes && i == 0),
                        namespace: Some(ns.clone()),
                    })
                    .collect(),
                resubscribe_on_new_namespace: true,
            }
        }
        (NamespaceScope::All, ns) => SubscriptionPlan {
            subscriptions: vec![Subscription {
                query: query("*", opts.nodes),
                namespace: None,
            }],
            resubscribe_on_new_namespace: ns == StreamNamespaces::AtSubscribe,
        },
    }
}

/// The `index` to resume at after `last`: the stream starts at that index
/// inclusive, so `last + 1`.
#[must_use]
pub fn resume_index(last: u64) -> u64 {
    last.saturating_add(1)
}

/// The last index seen on one stream. A resume re-delivers the newest
/// buffered item when asked for an index beyond it, and the start is
/// inclusive: drop every frame at or below what was already seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCursor {
    pub last: Option<u64>,
}

impl StreamCursor {
    /// True when the frame at `index` is new (and remembers it).
    pub fn accept(&mut self, index: u64) -> bool {
        if self.last.is_some_and(|l| index <= l) {
            return false;
        }
        self.last = Some(index);
        true
    }
}
