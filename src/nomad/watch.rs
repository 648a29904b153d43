//! Keeps one Nomad list current with blocking queries, in a task of its own:
//! a full read at start, then `index`/`wait` queries so that an unchanged
//! cluster is not downloaded again (an answer with an unchanged
//! `X-Nomad-Index` is dropped unread). At most one download per interval,
//! however busy the cluster; a full read at least every `resync`; back to a
//! full read when the index goes backwards (snapshot restore) or after an
//! error. The poll loop reads the latest aggregate from a `watch` channel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::Node;
use super::queries::ListPlan;
use super::skim::ListElement;
use super::{Block, ListOutcome, NomadApi, NomadError};

/// Nomad's server-side cap on a blocking query's wait.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The latest word on one list.
#[derive(Debug, Clone)]
pub enum State<A> {
    /// No answer yet.
    Starting,
    /// The aggregate of the last full read, still current.
    Ready(Arc<A>),
    /// The last request failed.
    Failed(Arc<NomadError>),
    /// Turned off (the token may not read this list); retried every resync.
    Disabled(Arc<NomadError>),
}

/// One list endpoint and how to fold it into an aggregate.
pub trait ListSource: Send + Sync + 'static {
    type Aggregate: Send + Sync + 'static;
    /// Short name for logs (`jobs`, `nodes`, `allocations`).
    fn name(&self) -> &'static str;
    /// Whether any server may answer (`?stale`): then a lower index only
    /// means a server that is a little behind, not a snapshot restore.
    fn stale(&self) -> bool {
        false
    }
    /// Whether a 403 turns this source off instead of failing the poll.
    fn optional(&self) -> bool {
        false
    }
    /// Reads the list (a blocking query when `block` is set).
    fn read(
        &self,
        api: &NomadApi,
        block: Option<Block>,
    ) -> impl Future<Output = Result<(ListOutcome, Option<Self::Aggregate>), NomadError>> + Send;
}

/// A list read folded into an aggregate, one element at a time: `add`
/// folds each element into a fresh `empty()`.
pub struct Fold<T, A> {
    plan: ListPlan,
    empty: Box<dyn Fn() -> A + Send + Sync>,
    add: fn(&mut A, T),
}

impl<T, A> Fold<T, A> {
    #[must_use]
    pub fn new(
        plan: ListPlan,
        empty: impl Fn() -> A + Send + Sync + 'static,
        add: fn(&mut A, T),
    ) -> Self {
        Self {
            plan,
            empty: Box::new(empty),
            add,
        }
    }
}

impl<T, A> ListSource for Fold<T, A>
where
    T: ListElement + 'static,
    A: Send + Sync + 'static,
{
    type Aggregate = A;

    fn name(&self) -> &'static str {
        self.plan.name
    }

    fn stale(&self) -> bool {
        self.plan.stale
    }

    fn optional(&self) -> bool {
        self.plan.optional
    }

    async fn read(
        &self,
        api: &NomadApi,
        block: Option<Block>,
    ) -> Result<(ListOutcome, Option<A>), NomadError> {
        let mut aggregate = (self.empty)();
        let outcome = api
            .list(&self.plan.query(block), |item: T| {
                (self.add)(&mut aggregate, item)
            })
            .await?;
        if let (Some(fallback), ListOutcome::Read { items: 0, .. }) =
            (&self.plan.fallback_if_empty, outcome)
        {
            let outcome = api
                .list(&fallback.query(None), |item: T| {
                    (self.add)(&mut aggregate, item)
                })
                .await?;
            return Ok((outcome, Some(aggregate)));
        }
        Ok((outcome, Some(aggregate)))
    }
}

/// `GET /v1/node/<id>` kept current by blocking queries (`--client`).
pub struct NodeDocument {
    pub node_id: String,
}

impl ListSource for NodeDocument {
    type Aggregate = Node;

    fn name(&self) -> &'static str {
        "node"
    }

    async fn read(
        &self,
        api: &NomadApi,
        block: Option<Block>,
    ) -> Result<(ListOutcome, Option<Node>), NomadError> {
        Ok(match api.node_blocking(&self.node_id, block).await? {
            None => (
                ListOutcome::Unchanged {
                    index: block.map_or(0, |b| b.index),
                },
                None,
            ),
            Some((node, index)) => (
                ListOutcome::Read {
                    index,
                    items: 1,
                    pages: 1,
                },
                Some(node),
            ),
        })
    }
}

/// Timing of a watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// Minimum spacing of downloads (the poll interval).
    pub interval: Duration,
    /// Blocking query wait.
    pub wait: Duration,
    /// Force a full read this often.
    pub resync: Duration,
}

/// Spawns the watcher; the receiver sees every state change.
pub fn spawn<S: ListSource>(
    source: S,
    api: NomadApi,
    timing: WatchTiming,
    shutdown: CancellationToken,
) -> (
    watch::Receiver<State<S::Aggregate>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(State::Starting);
    let handle = tokio::spawn(run(source, api, timing, tx, shutdown));
    (rx, handle)
}

async fn run<S: ListSource>(
    source: S,
    api: NomadApi,
    timing: WatchTiming,
    tx: watch::Sender<State<S::Aggregate>>,
    shutdown: CancellationToken,
) {
    let mut index = 0u64;
    let mut last_full: Option<Instant> = None;
    loop {
        let started = Instant::now();
        // Park no longer than until the next resync is due.
        let until_resync = last_full.map_or(Duration::ZERO, |t| {
            timing.resync.saturating_sub(t.elapsed())
        });
        let block = (index > 0 && until_resync >= Duration::from_millis(10)).then_some(Block {
            index,
            wait: timing.wait.min(until_resync),
        });
        let read = tokio::select! {
            () = shutdown.cancelled() => return,
            read = source.read(&api, block) => read,
        };
        // At most one request per interval, counted from the request start:
        // a blocking query that waited minutes is followed at once, a server
        // that ignores `index` is not hammered.
        let mut pause = timing.interval;
        match read {
            Ok((ListOutcome::Unchanged { .. }, _)) => {
                tracing::trace!(list = source.name(), index, "unchanged");
            }
            Ok((
                ListOutcome::Read {
                    index: new,
                    items,
                    pages,
                },
                aggregate,
            )) => {
                tracing::debug!(
                    list = source.name(),
                    items,
                    pages,
                    ms = started.elapsed().as_millis(),
                    "read"
                );
                let new = new.unwrap_or(0);
                if block.is_some() && new < index && !source.stale() {
                    tracing::info!(
                        list = source.name(),
                        from = index,
                        to = new,
                        "Nomad index went backwards; reading the whole list again"
                    );
                    index = 0;
                    continue;
                }
                index = new;
                last_full = Some(started);
                if let Some(aggregate) = aggregate {
                    tx.send_replace(State::Ready(Arc::new(aggregate)));
                }
            }
            Err(err) if err.is_forbidden() && source.optional() => {
                index = 0;
                pause = timing.resync;
                tx.send_replace(State::Disabled(Arc::new(err)));
            }
            Err(err) => {
                index = 0;
                tx.send_replace(State::Failed(Arc::new(err)));
            }
        }
        let next = started + pause;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Waits (bounded) until `rx` has left `Starting`.
pub async fn first_answer<A>(rx: &mut watch::Receiver<State<A>>, limit: Duration) {
    let _ = tokio::time::timeout(limit, rx.wait_for(|s| !matches!(s, State::Starting))).await;
}
