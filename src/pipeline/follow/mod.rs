//! (Over 450 lines on purpose: one task's life — subscribe, apply, fetch,
//! publish, repair — whose steps share its state. The full read is in
//! `read.rs`, the per-change reads in `fetch.rs`, the namespace watch in
//! `namespaces.rs`.)
//!
//! `--server` on Nomad 1.0+: one full read of the three lists, then Nomad's
//! event stream (`docs/nomad-events.md`) keeps a `gauges::cluster::
//! ClusterState` current, so that the cost follows the cluster's changes
//! and not its size. The aggregates go out on the same `watch` channels the
//! blocking-query watchers use, so the poll path is the same for both.
//!
//! Gaps are never silent. Nomad cannot tell a subscriber it missed events,
//! so every new subscription (a reconnect, an error, `subscription closed
//! by server`, `event dropped from buffer`, a stream silent past two
//! heartbeats, an index that went backwards, the periodic reconcile) is
//! followed by a fresh full read that replaces the state; until it is done
//! the last aggregates keep being served. The stream is opened before the
//! read, so nothing between the read and the stream is lost; what the read
//! already holds is dropped by the state's per-object indexes.
//!
//! What an event does not carry is fetched per change: the summary of a job
//! that is (or turned) dead, to tell `complete` from `dead`, and whether a
//! job whose deregistration is ambiguous still exists.

mod fetch;
mod namespaces;
mod read;

use fetch::{run_fetch, settle, Fetch};
use namespaces::NamespaceWatch;
use read::full_read;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::gauges::cluster::{ClusterState, JobRef};
use crate::gauges::server::{AllocUsage, JobCounts, NodeView};
use crate::nomad::events::{
    self, Frame, LineDecoder, NamespaceScope, StreamCursor, StreamError, SubscribeOptions,
};
use crate::nomad::features::{Features, StreamFeatures, StreamNamespaces};
use crate::nomad::queries::ServerLists;
use crate::nomad::watch::State;
use crate::nomad::{EventStream, NomadApi, NomadError};

/// Frames queued between the reader and the state (the reader must keep
/// pace with Nomad, which drops a subscriber that falls behind).
const QUEUED_FRAMES: usize = 4096;
/// Summary and existence checks in flight at once.
const MAX_FETCHES: usize = 8;
/// How long a summary read waits for the event's index to be readable.
pub(super) const SUMMARY_WAIT: Duration = Duration::from_secs(2);
/// Streams that end before their first line, in a row, before giving up on
/// the stream (Nomad 1.11.2+ answers a refused token with 200 and EOF).
const EMPTY_STREAMS_LIMIT: u32 = 3;
/// A stream that lived this long resets the reconnect back-off.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Why the stream is not used on this cluster; the caller falls back to
/// blocking queries and logs this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

/// Whether the stream can be used at all, from the version table alone.
pub fn unusable(features: &Features, namespace: Option<&str>) -> Option<Unusable> {
    let why = |s: &str| Some(Unusable(s.to_owned()));
    if features.version.is_none() {
        return why("the Nomad version is unknown (the token may not read /v1/agent/self)");
    }
    let Some(stream) = features.stream else {
        return why("Nomad before 1.0 has no event stream");
    };
    if stream.broken_status_line {
        return why(
            "Nomad 1.11.2 answers the event stream with an HTTP/0.0 status line (fixed in 1.11.3)",
        );
    }
    if !stream.initial_heartbeat {
        return why("this Nomad sends no heartbeat when a subscription starts (1.0.7 / 1.1.1+)");
    }
    if stream.namespaces == StreamNamespaces::Literal && namespace.is_none() {
        return why(
            "this Nomad reads namespace=* on the event stream literally (fixed in 1.0.12 / 1.1.6)",
        );
    }
    None
}

/// Everything the follower needs.
#[derive(Clone)]
pub struct FollowSetup {
    pub api: NomadApi,
    pub features: Features,
    pub lists: ServerLists,
    /// `NOMAD_NAMESPACE`: subscribe to this namespace only.
    pub namespace: Option<String>,
    /// The poll interval: changed aggregates are published four times as
    /// often.
    pub interval: Duration,
    /// Full re-read this often while the stream is healthy.
    pub reconcile: Duration,
    /// A stream silent this long is taken as dead (two heartbeats).
    pub silence: Duration,
    pub cluster_view: bool,
}

/// The aggregates, as the watchers publish them.
pub struct Channels {
    pub jobs: watch::Receiver<State<JobCounts>>,
    pub nodes: Option<watch::Receiver<State<NodeView>>>,
    pub allocs: Option<watch::Receiver<State<AllocUsage>>>,
    /// Set once the stream turned out unusable after it started.
    pub fallback: watch::Receiver<Option<Unusable>>,
}

struct Senders {
    /// Why the node (`.0`) or allocation (`.1`) list could not be read: the
    /// cluster view is optional, the job counts go on without it.
    view_errors: std::sync::Mutex<ViewErrors>,
    jobs: watch::Sender<State<JobCounts>>,
    nodes: Option<watch::Sender<State<NodeView>>>,
    allocs: Option<watch::Sender<State<AllocUsage>>>,
    fallback: watch::Sender<Option<Unusable>>,
}

impl Senders {
    fn publish(&self, state: &ClusterState) {
        let (jobs, allocs, nodes) = state.len();
        tracing::debug!(
            jobs,
            allocs,
            nodes,
            summaries_pending = state.summary_fetches_pending(),
            state_bytes = state.approx_bytes(),
            "event stream: publishing the aggregates"
        );
        self.jobs
            .send_replace(State::Ready(Arc::new(state.job_counts().clone())));
        let (nodes_error, allocs_error) = self
            .view_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        if let Some(tx) = &self.nodes {
            tx.send_replace(match &nodes_error {
                Some(err) => unavailable(err),
                None => State::Ready(Arc::new(state.node_view())),
            });
        }
        if let Some(tx) = &self.allocs {
            tx.send_replace(match &allocs_error {
                Some(err) => unavailable(err),
                None => State::Ready(Arc::new(state.alloc_usage())),
            });
        }
    }

    fn fail(&self, err: NomadError) {
        let err = Arc::new(err);
        self.jobs.send_replace(State::Failed(Arc::clone(&err)));
        if let Some(tx) = &self.nodes {
            tx.send_replace(State::Failed(Arc::clone(&err)));
        }
        if let Some(tx) = &self.allocs {
            tx.send_replace(State::Failed(err));
        }
    }
}

/// Why the node and the allocation list could not be read, if they could not.
pub(super) type ViewErrors = (Option<Arc<NomadError>>, Option<Arc<NomadError>>);

/// An optional list that could not be read: refused (403) or failed.
fn unavailable<A>(err: &Arc<NomadError>) -> State<A> {
    if err.is_forbidden() {
        State::Disabled(Arc::clone(err))
    } else {
        State::Failed(Arc::clone(err))
    }
}

/// The subscription query (`None`: from the oldest buffered item).
fn subscribe_params(setup: &FollowSetup, last: Option<u64>) -> Vec<(&'static str, String)> {
    let Some(stream) = setup.features.stream else {
        return Vec::new();
    };
    let scope = match setup.namespace.as_deref() {
        Some(ns) => NamespaceScope::One(ns),
        None => NamespaceScope::All,
    };
    let opts = SubscribeOptions {
        scope,
        nodes: setup.cluster_view,
        last_index: last,
    };
    events::plan_subscriptions(&stream, &opts, &[])
        .subscriptions
        .into_iter()
        .next()
        .map(|s| s.query)
        .unwrap_or_default()
}

/// What opening the stream answered that says "do not use it".
fn refusal(err: &NomadError) -> Option<Unusable> {
    let text = crate::pipeline::error_chain(err);
    if err.is_forbidden() {
        return Some(Unusable(format!(
            "the token may not read the event stream (it needs read-job on every namespace and node:read): {text}"
        )));
    }
    if err.is_not_found() || text.contains("EventBroker not configured") {
        return Some(Unusable(format!("this agent has no event stream: {text}")));
    }
    None
}

/// Opens the stream and starts following it.
///
/// # Errors
///
/// `Ok(Err(Unusable))` when Nomad refuses the stream (fall back to blocking
/// queries); `Err` for any other failure (the poll fails, the next retries).
pub async fn start(
    setup: FollowSetup,
    stop: CancellationToken,
) -> Result<Result<Channels, Unusable>, NomadError> {
    let stream = match setup
        .api
        .event_stream(&subscribe_params(&setup, None))
        .await
    {
        Ok(stream) => stream,
        Err(err) => {
            return match refusal(&err) {
                Some(unusable) => Ok(Err(unusable)),
                None => Err(err),
            }
        }
    };
    let (jobs, jobs_rx) = watch::channel(State::Starting);
    let (nodes, nodes_rx) = if setup.cluster_view {
        let (tx, rx) = watch::channel(State::Starting);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (allocs, allocs_rx) = if setup.cluster_view {
        let (tx, rx) = watch::channel(State::Starting);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (fallback, fallback_rx) = watch::channel(None);
    let senders = Senders {
        view_errors: std::sync::Mutex::new((None, None)),
        jobs,
        nodes,
        allocs,
        fallback,
    };
    tokio::spawn(run(setup, stream, senders, stop));
    Ok(Ok(Channels {
        jobs: jobs_rx,
        nodes: nodes_rx,
        allocs: allocs_rx,
        fallback: fallback_rx,
    }))
}

/// Why one subscription ended.
enum Ended {
    Stream(StreamError),
    Http(NomadError),
    Backwards {
        last: u64,
        got: u64,
    },
    Reconcile,
    /// A namespace appeared that this subscription's `namespace=*` does not
    /// cover (Nomad 1.9.6 / 1.10.0+ expand it at subscribe time).
    NewNamespace,
    Stopped,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Stream(e) => write!(f, "{e}"),
            Ended::Http(e) => f.write_str(&crate::pipeline::error_chain(e)),
            Ended::Backwards { last, got } => {
                write!(f, "the stream's index went backwards ({last} → {got})")
            }
            Ended::Reconcile => f.write_str("periodic reconcile"),
            Ended::NewNamespace => f.write_str(
                "a namespace was created, which namespace=* covers only from a new subscription",
            ),
            Ended::Stopped => f.write_str("stopped"),
        }
    }
}

async fn run(setup: FollowSetup, first: EventStream, senders: Senders, stop: CancellationToken) {
    let Some(features) = setup.features.stream else {
        return;
    };
    let mut stream = Some(first);
    let mut cursor = StreamCursor::default();
    // Whether aggregates were published: until then a failure is the poll's.
    let mut published = false;
    let mut backoff = Duration::ZERO;
    let mut empty_streams = 0u32;
    loop {
        let opened = Instant::now();
        let current = match stream.take() {
            Some(s) => s,
            None => {
                let params = subscribe_params(&setup, cursor.last);
                let opened = tokio::select! {
                    () = stop.cancelled() => return,
                    opened = setup.api.event_stream(&params) => opened,
                };
                match opened {
                    Ok(s) => s,
                    Err(err) => {
                        if let Some(unusable) = refusal(&err) {
                            senders.fallback.send_replace(Some(unusable));
                            return;
                        }
                        tracing::debug!(
                            "cannot open the event stream: {}",
                            crate::pipeline::error_chain(&err)
                        );
                        if !published {
                            senders.fail(err);
                        }
                        backoff = next_backoff(backoff);
                        if sleep_or_stop(backoff, &stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        let (tx, rx) = mpsc::channel(QUEUED_FRAMES);
        let reader = tokio::spawn(read_frames(current, tx, setup.silence));
        let fresh = tokio::select! {
            () = stop.cancelled() => { reader.abort(); return; }
            fresh = full_read(&setup) => fresh,
        };
        let (fresh, view_errors) = match fresh {
            Ok(fresh) => fresh,
            Err(err) => {
                reader.abort();
                tracing::debug!(
                    "full read for the event stream failed: {}",
                    crate::pipeline::error_chain(&err)
                );
                senders.fail(err);
                backoff = next_backoff(backoff);
                if sleep_or_stop(backoff, &stop).await {
                    return;
                }
                continue;
            }
        };
        // The fresh read replaces the state whole: it holds every job's
        // summary, so nothing the old state still had to fetch is lost.
        let mut current = fresh;
        current.read_done();
        published = true;
        // A cluster view that could not be read is read again soon.
        let reread_in = match &view_errors {
            (None, None) => setup.reconcile,
            (nodes, allocs) => {
                let errors: Vec<_> = [nodes, allocs].into_iter().flatten().collect();
                for err in &errors {
                    tracing::debug!(
                        "cluster view list failed: {}",
                        crate::pipeline::error_chain(err.as_ref())
                    );
                }
                if errors.iter().all(|e| e.is_forbidden()) {
                    // Refused: asking again soon would only cost full reads.
                    setup.reconcile
                } else {
                    backoff = next_backoff(backoff);
                    backoff
                }
            }
        };
        if let Ok(mut slot) = senders.view_errors.lock() {
            *slot = view_errors;
        }
        let (ended, lines) = follow(
            &setup,
            &features,
            &mut current,
            &mut cursor,
            rx,
            &senders,
            &stop,
            reread_in,
        )
        .await;
        // Dropped before the next read: one state in memory at a time (the
        // published aggregates keep the gauges flowing meanwhile).
        drop(current);
        reader.abort();
        if matches!(ended, Ended::Stopped) {
            return;
        }
        if lines == 0 && !matches!(ended, Ended::Reconcile) {
            empty_streams += 1;
            if empty_streams >= EMPTY_STREAMS_LIMIT {
                senders.fallback.send_replace(Some(Unusable(format!(
                    "the event stream ended before its first line {EMPTY_STREAMS_LIMIT} times in a row (Nomad 1.11.2+ answers a refused token that way): {ended}"
                ))));
                return;
            }
        } else {
            empty_streams = 0;
        }
        match ended {
            Ended::Reconcile => {
                tracing::debug!("event stream: periodic reconcile, reading the lists again")
            }
            other => tracing::info!(
                "event stream: {other}; subscribing again and reading the lists again"
            ),
        }
        backoff = if opened.elapsed() >= HEALTHY_AFTER {
            Duration::ZERO
        } else {
            next_backoff(backoff)
        };
        if sleep_or_stop(backoff, &stop).await {
            return;
        }
    }
}

fn next_backoff(current: Duration) -> Duration {
    (current * 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Sleeps; true when stopped meanwhile.
async fn sleep_or_stop(pause: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(pause) => false,
    }
}

/// Reads the stream into frames until it ends; the last message says why.
async fn read_frames(
    mut stream: EventStream,
    tx: mpsc::Sender<Result<Frame, Ended>>,
    silence: Duration,
) {
    let mut decoder = LineDecoder::default();
    loop {
        let chunk = match stream.chunk(silence).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                let (last, why) = decoder.finish();
                if let Some(frame) = last {
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(Err(Ended::Stream(why))).await;
                return;
            }
            Err(err) => {
                let _ = tx.send(Err(Ended::Http(err))).await;
                return;
            }
        };
        let frames = match decoder.feed(&chunk) {
            Ok(frames) => frames,
            Err(err) => {
                let _ = tx.send(Err(Ended::Stream(err))).await;
                return;
            }
        };
        for frame in frames {
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    }
}

/// Applies frames until the subscription ends; returns why, and how many
/// lines it carried (heartbeats included).
#[allow(clippy::too_many_arguments)]
async fn follow(
    setup: &FollowSetup,
    features: &StreamFeatures,
    state: &mut ClusterState,
    cursor: &mut StreamCursor,
    mut rx: mpsc::Receiver<Result<Frame, Ended>>,
    senders: &Senders,
    stop: &CancellationToken,
    reread_in: Duration,
) -> (Ended, u64) {
    let reconcile_at = Instant::now() + reread_in;
    let mut namespaces = NamespaceWatch::start(setup, features, stop);
    // Changes are published a few times per interval, so that a poll sends
    // what the stream said at most a quarter interval before it.
    let every = (setup.interval / 4).clamp(Duration::from_millis(50), Duration::from_millis(2500));
    let mut publish = tokio::time::interval(every);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut lines = 0u64;
    let mut checks: Vec<JobRef> = Vec::new();
    let mut fetches = FuturesUnordered::new();
    let mut fetch_pause_until: Option<Instant> = None;
    // What the read brought is out at once, before the first tick.
    while let Ok(message) = rx.try_recv() {
        match message {
            Ok(frame) => {
                lines += 1;
                if let Err(ended) = apply(frame, features, state, cursor, &mut checks) {
                    return (ended, lines);
                }
            }
            Err(ended) => return (ended, lines),
        }
    }
    senders.publish(state);
    loop {
        let can_fetch = fetch_pause_until.is_none_or(|t| Instant::now() >= t);
        while can_fetch && fetches.len() < MAX_FETCHES {
            let next = checks
                .pop()
                .map(Fetch::Exists)
                .or_else(|| state.next_summary_fetch().map(Fetch::Summary));
            let Some(next) = next else { break };
            fetches.push(run_fetch(setup.api.clone(), next));
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return (Ended::Stopped, lines),
            message = rx.recv() => match message {
                Some(Ok(frame)) => {
                    lines += 1;
                    dirty |= matches!(frame, Frame::Events { .. });
                    if let Err(ended) = apply(frame, features, state, cursor, &mut checks) {
                        return (ended, lines);
                    }
                }
                Some(Err(ended)) => return (ended, lines),
                None => return (Ended::Stream(StreamError::Eof), lines),
            },
            Some((fetch, result)) = fetches.next(), if !fetches.is_empty() => {
                dirty = true;
                if let Err(err) = settle(state, fetch, result) {
                    tracing::debug!("job summary read failed, retrying: {}", crate::pipeline::error_chain(&err));
                    fetch_pause_until = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            _ = publish.tick() => {
                if std::mem::take(&mut dirty) {
                    senders.publish(state);
                }
            }
            () = tokio::time::sleep_until(reconcile_at) => return (Ended::Reconcile, lines),
            grown = namespaces.grown() => if grown {
                return (Ended::NewNamespace, lines);
            },
        }
    }
}

/// Applies one frame; an index below the last applied one ends the
/// subscription (the server's state went back: a restore, another server).
fn apply(
    frame: Frame,
    features: &StreamFeatures,
    state: &mut ClusterState,
    cursor: &mut StreamCursor,
    checks: &mut Vec<JobRef>,
) -> Result<(), Ended> {
    let Frame::Events { index, events } = frame else {
        return Ok(());
    };
    match cursor.last {
        // Re-delivered at or below the last applied index: Nomad starts a
        // resumed subscription at the newest item when asked beyond it.
        Some(last) if index == last => return Ok(()),
        Some(last) if index < last => {
            // Forget the cursor: the re-read sets the state right again.
            cursor.last = None;
            return Err(Ended::Backwards { last, got: index });
        }
        _ => {}
    }
    if cursor.accept(index) {
        checks.extend(state.apply_frame(&events, features));
    }
    Ok(())
}
