//! One integration binary (ripgrep-style): the harness in `support` compiles
//! once. Tests that talk to sockets use 127.0.0.1 only.

mod support; // fake Nomad, DogStatsD capture, in-process daemon, TempDir, PKI

mod cli; // the built binary: original command line, usage errors, signals
mod client_role; // --client end to end per Nomad version: values, tags, datagrams
mod datadog; // the Datadog dashboard and monitors name only catalogue metrics and tags
mod degraded; // every fault fails the poll cleanly; the next good poll recovers
mod demo; // the built binary's `demo`: live view of a changing simulated cluster, --raw, signals
mod fake_stream; // the fake Nomad itself: event stream and transactions per version
mod fixture_mapping; // fixtures → gauges without HTTP; feature table vs fixtures
mod fuzz; // property tests: no input panics; chunked decoding = whole parse
mod operator; // --once, --dry-run, JSON logs, Unix sockets, tags, health, token file
mod prometheus; // a real Prometheus scrapes what DogStatsD got; promtool lints /metrics
mod server_cluster; // --server at scale: census, capacity, blocking queries, paging
mod server_role; // --server end to end per Nomad version: job counts, namespaces
mod stream; // --server on the event stream = a fresh read after churn, cuts, gaps; fallbacks; --client cost
mod tls; // HTTPS to Nomad: CA file or directory, server name, client certificates
