//! nomad-metrics: polls the Nomad HTTP API and sends gauges to DogStatsD.
//!
//! ```text
//!   Nomad HTTP API ──► nomad::NomadApi ──► gauges::{client,server} ──► statsd::Statsd ──► DogStatsD (UDP)
//!   (JSON, typed in        (POLL)              (MAP: pure)                 (EMIT: cadence)
//!    nomad::model)
//!                    └──────────── pipeline: one loop per role, poll_failure ──────────┘
//! ```
//!
//! Modules: `cli` (flags) → `config` (validated settings) → `pipeline`
//! (loops) using `nomad` (HTTP + JSON), `gauges` (metric catalogue and
//! mapping) and `statsd` (DogStatsD) or `prometheus` (`/metrics`, the same
//! batches); `health` (`/healthz`) and `prometheus` are served by `listen`
//! (the daemon's own HTTP listeners); `shutdown` turns signals into
//! a cancellation token.

pub mod cli;
pub mod config;
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
