//! Shared test harness: fake Nomad, DogStatsD capture, and an in-process
//! daemon started like `main` starts it (same `Cli` parsing, same `Config`).

#![allow(dead_code)]

pub mod fake_nomad;
pub mod statsd_capture;
pub mod temp_dir;
pub mod tls;

use std::time::Duration;

use clap::Parser as _;
use nomad_metrics::cli::{Cli, Command};
use nomad_metrics::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use fake_nomad::{fixture, fixture_text, FakeNomad, Fault};
pub use statsd_capture::{Line, StatsdCapture};
pub use temp_dir::TempDir;

/// Poll period used by in-process tests: fast, well above scheduling noise.
pub const INTERVAL: &str = "300ms";
/// Generous bound for "within one interval plus the timeout".
pub const WAIT: Duration = Duration::from_secs(10);

pub const CLIENT: &str = "circle.nomad.client_agent.";
pub const SERVER: &str = "circle.nomad.server_agent.";

/// Catalogue names (relative to `PREFIX`) under one of the role prefixes
/// above (`CLIENT`, `SERVER`).
fn catalogue_names(role_prefix: &str) -> impl Iterator<Item = &'static str> + '_ {
    let role = role_prefix
        .strip_prefix(nomad_metrics::gauges::PREFIX)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or_else(|| panic!("{role_prefix} is not under the metric prefix"));
    nomad_metrics::gauges::CATALOGUE
        .iter()
        .map(|metric| metric.name)
        .filter(move |name| name.starts_with(role))
}

/// Gauge names one successful `--client` poll sends: every `client_agent.`
/// entry of the catalogue (today 12 resource gauges + 3 health gauges).
pub fn client_gauges_per_poll() -> usize {
    catalogue_names(CLIENT).count()
}

/// Health gauges of a role (`CLIENT` or `SERVER`): the catalogue entries
/// right under the role, outside any family (`client_agent.poll_failure`,
/// `poll_duration_ms`, `last_success_age_s`, not `client_agent.resources.*`).
pub fn health_gauges(role_prefix: &str) -> usize {
    let role_len = role_prefix.len() - nomad_metrics::gauges::PREFIX.len() - 1;
    catalogue_names(role_prefix)
        .filter(|name| !name[role_len..].contains('.'))
        .count()
}

/// Builds a `Config` from a command line (after `start`) and an environment.
pub fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
    let mut argv = vec!["nomad-metrics", "start"];
    argv.extend_from_slice(args);
    let Command::Start(start) = Cli::try_parse_from(argv)
        .expect("valid command line")
        .command
    else {
        panic!("not a start command line");
    };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_args(start, &move |key| {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    })
    .expect("valid config")
}

/// The usual command line for a fake Nomad and a capture, plus `extra`.
pub fn args_for<'a>(nomad: &'a str, statsd_port: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--nomad-uri",
        nomad,
        "--statsd-host",
        "127.0.0.1",
        "--statsd-port",
        statsd_port,
        "--interval",
        INTERVAL,
    ];
    args.extend_from_slice(extra);
    args
}

/// A daemon running in this process.
pub struct Daemon {
    token: CancellationToken,
    handle: JoinHandle<anyhow::Result<nomad_metrics::pipeline::Finished>>,
}

impl Daemon {
    pub fn start(cfg: Config) -> Self {
        let token = CancellationToken::new();
        let handle = tokio::spawn(nomad_metrics::run(cfg, token.clone()));
        Self { token, handle }
    }

    /// Cancels and waits (bounded) for a clean return.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(2), self.handle)
            .await
            .expect("daemon stops within 2 s of cancellation")
            .expect("daemon task did not panic")
            .expect("daemon returned Ok");
    }
}

/// Starts a fake Nomad of `version`, a capture, and a daemon with `extra`
/// flags and `env`.
pub async fn setup(
    version: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (FakeNomad, StatsdCapture, Daemon) {
    let nomad = FakeNomad::start(version).await;
    let statsd = StatsdCapture::start().await;
    let url = nomad.url();
    let port = statsd.port().to_string();
    let cfg = config(&args_for(&url, &port, extra), env);
    let daemon = Daemon::start(cfg);
    (nomad, statsd, daemon)
}

/// `name → value` of a poll. A name sent with several tag sets (one series
/// each) maps to its first value; the same series twice fails the test.
pub fn by_name(lines: &[Line]) -> std::collections::BTreeMap<String, f64> {
    series(lines);
    let mut map = std::collections::BTreeMap::new();
    for l in lines {
        map.entry(l.name.clone()).or_insert(l.value);
    }
    map
}

/// `"name|k:v,k2:v2" → value` (tags sorted) of a poll; a series sent twice
/// in one poll fails the test.
pub fn series(lines: &[Line]) -> std::collections::BTreeMap<String, f64> {
    let mut map = std::collections::BTreeMap::new();
    for l in lines {
        let key = format!("{}|{}", l.name, l.tag_set().join(","));
        assert!(
            map.insert(key.clone(), l.value).is_none(),
            "{key} sent twice in one poll"
        );
    }
    map
}

/// Sends SIGTERM to a spawned daemon and collects its output; asserts the
/// clean exit (code 0).
pub fn sigterm_and_collect(child: std::process::Child) -> std::process::Output {
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    let out = child.wait_with_output().expect("wait for the daemon");
    assert_eq!(out.status.code(), Some(0), "exit code after SIGTERM");
    out
}

/// Polls `cond` every 10 ms until it holds; panics after `WAIT`.
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the async test body `$name(version)` once per fixture version (the
/// list in `fake_nomad/versions.rs`), as a separately named test each:
/// `$name::nomad_1_11_0`.
#[macro_export]
macro_rules! for_each_nomad_version {
    ($name:ident) => {
        mod $name {
            $crate::for_each_version!($crate::nomad_version_test, $name);
        }
    };
}

/// One test of `for_each_nomad_version!` (its callback).
#[macro_export]
macro_rules! nomad_version_test {
    ($body:ident $test:ident, $version:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            super::$body($version).await
        }
    };
}
