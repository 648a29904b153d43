//! nomad-metrics: polls the Nomad HTTP API and sends gauges to DogStatsD
//! (and serves them to Prometheus).
//!
//! ```text
//!  cli ─► config ─► pipeline::run: one loop per Role (role.rs), each tick:
//!
//!   Nomad HTTP API ──► nomad/ ─────────────► gauges/ ─────────► statsd ──► DogStatsD (UDP)
//!   (JSON, NDJSON      POLL: typed models,    MAP: pure,          EMIT  └─► prometheus (/metrics)
//!    event stream)     errors, watchers,      catalogue + tags
//!                      the event stream
//!                         ▲
//!                 nomad::features (what this Nomad version can do)
//!
//!   pipeline/ keeps each role's sources current (blocking-query watchers,
//!   or the event-stream follower for --server) and adds the health gauges.
//! ```
//!
//! Module map:
//!
//! | module | its one job |
//! |---|---|
//! | `cli`, `config` | flags and environment → a validated `Config` |
//! | `role` | `Role` (client, server) and each role's health gauge names |
//! | `pipeline` | the per-role loop (`mod.rs`), the `client.rs` and `server.rs` collectors, the event-stream follower (`follow.rs`) |
//! | `nomad::api`, `list`, `tls`, `token`, `error` | the HTTP client, list reads (paging, blocking), TLS, ACL token, typed errors |
//! | `nomad::model`, `stream`, `skim` | Nomad's JSON as types; element-at-a-time list decoding and the job-list fast path |
//! | `nomad::events` | the event stream's wire side: NDJSON frames, typed events, endings, subscriptions |
//! | `nomad::features` | **the** table of version quirks: every version comparison is here |
//! | `nomad::queries` | which list queries a version gets (paths, `filter`, paging) |
//! | `nomad::watch` | keeps one list or document current with blocking queries, in its own task |
//! | `gauges` (`mod.rs`) | the metric catalogue: every name, unit and help text |
//! | `gauges::resources`, `tags` | what both roles count (capacity, lifecycle-aware usage); safe tags |
//! | `gauges::client`, `server` | Nomad models → the gauges of each role; zero-fill of vanished series |
//! | `gauges::cluster` | the compact per-object cluster state the event stream keeps current |
//! | `statsd`, `prometheus` | DogStatsD output; the same batches as Prometheus text on `/metrics` |
//! | `listen`, `health`, `shutdown` | the daemon's HTTP listeners, `/healthz`, signals |
//! | `demo` | `nomad-metrics demo`: a simulated Nomad, both roles against it, a live view |
//!
//! Where to change things:
//! - **a metric**: its constant and `CATALOGUE` entry in `gauges/mod.rs`,
//!   the mapping in `gauges/client.rs` or `gauges/server.rs` (and
//!   `gauges/cluster.rs` when the event stream must keep it current), the
//!   README's metric table (a test checks it against the catalogue).
//! - **a Nomad version quirk**: a field of `Features` in `nomad/features.rs`
//!   (with its unit test), read where it matters; never compare versions
//!   elsewhere. Facts in `docs/nomad-api.md` and `docs/nomad-events.md`.
//! - **a list source** for `--server`: its `ListPlan` in
//!   `nomad/queries.rs`, its aggregate in `gauges/server.rs`, one
//!   `watch::Fold` in `pipeline/server.rs::start_watchers` (and, for the
//!   event stream, its rows and events in `gauges/cluster.rs` and
//!   `pipeline/follow.rs::full_read`).

pub mod cli;
pub mod config;
pub mod demo;
pub mod gauges;
pub mod health;
pub mod listen;
pub mod nomad;
pub mod pipeline;
pub mod prometheus;
pub mod role;
pub mod shutdown;
pub mod statsd;

pub use config::Config;
pub use pipeline::run;
