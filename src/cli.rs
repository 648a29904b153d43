//! The command line (clap derive only): flags, their environment fallbacks,
//! defaults and per-value parsing. Cross-flag rules and the `NOMAD_*`
//! environment conventions are applied in `config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use url::Url;

/// Polls the Nomad HTTP API and sends cluster and node gauges to DogStatsD.
#[derive(Debug, Parser)]
#[command(name = "nomad-metrics", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference costs nothing, and a
// boxed `StartArgs` would change every `Command::Start(args)` match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start polling (at least one of --client, --server).
    #[command(after_help = ENV_HELP)]
    Start(StartArgs),
    /// Try it: both modes against a built-in simulated Nomad cluster, with a
    /// live view of what they send (no Nomad or Datadog needed).
    Demo(DemoArgs),
}

/// `demo`: the simulated cluster and its live view.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Poll period of both modes; the simulated cluster changes as often.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Seed of the simulated cluster: a seed always replays the same cluster.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Print the raw DogStatsD lines (as --dry-run does) instead of the view.
    #[arg(long)]
    pub raw: bool,

    /// Send the gauges to this DogStatsD (UDP) as well; the view still shows
    /// what was sent [default: 127.0.0.1 when only --statsd-port is given].
    #[arg(long, value_name = "HOST", value_parser = parse_host)]
    pub statsd_host: Option<String>,

    /// DogStatsD UDP port for --statsd-host [default: 8125].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub statsd_port: Option<u16>,
}

const ENV_HELP: &str = "\
DogStatsD destination, first match wins: --no-statsd (none); --dry-run;
--statsd-socket; --statsd-host/--statsd-port; DD_DOGSTATSD_URL;
DD_DOGSTATSD_SOCKET; DD_AGENT_HOST/DD_DOGSTATSD_PORT; 127.0.0.1:8125.

Nomad environment (read as the `nomad` CLI reads it):
  NOMAD_TOKEN            ACL token, sent as X-Nomad-Token (never logged)
  NOMAD_REGION           region to query
  NOMAD_NAMESPACE        count jobs in this namespace only (default: all namespaces)
  NOMAD_CACERT           PEM file of CA certificates to verify Nomad's certificate
  NOMAD_CAPATH           directory of PEM CA certificate files (if no NOMAD_CACERT)
  NOMAD_CLIENT_CERT      PEM client certificate for mutual TLS
  NOMAD_CLIENT_KEY       PEM key of NOMAD_CLIENT_CERT
  NOMAD_SKIP_VERIFY      true: do not verify Nomad's certificate (not recommended)
  NOMAD_TLS_SERVER_NAME  name to verify Nomad's certificate against
Logging: RUST_LOG (default info), to stderr.";

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Nomad HTTP API address: http://HOST:PORT, https://…, or
    /// unix:///PATH for an agent's Unix socket (the Task API socket).
    #[arg(long, env = "NOMAD_ADDR", hide_env_values = true, value_name = "URL",
          default_value = DEFAULT_NOMAD_ADDR, value_parser = parse_nomad_uri)]
    pub nomad_uri: Url,

    /// DogStatsD host name or IP, re-resolved every 30 s
    /// [env: DD_AGENT_HOST] [default: 127.0.0.1].
    #[arg(long, value_name = "HOST", value_parser = parse_host)]
    pub statsd_host: Option<String>,

    /// DogStatsD UDP port [env: DD_DOGSTATSD_PORT] [default: 8125].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub statsd_port: Option<u16>,

    /// DogStatsD Unix datagram socket, instead of UDP
    /// [env: DD_DOGSTATSD_SOCKET]. DD_DOGSTATSD_URL (udp://HOST:PORT or
    /// unix:///PATH) is read when no --statsd-* flag is given.
    #[arg(long, value_name = "PATH")]
    pub statsd_socket: Option<PathBuf>,

    /// Tag added to every gauge (repeatable), e.g. --tag env:prod. Also from
    /// DD_TAGS, and DD_ENV / DD_SERVICE / DD_VERSION as env / service /
    /// version; DD_ENTITY_ID as dd.internal.entity_id.
    #[arg(long = "tag", value_name = "KEY:VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Report the polled node's resources (run next to a Nomad client).
    #[arg(long)]
    pub client: bool,

    /// Report cluster-wide job counts, node census and capacity (point at a
    /// Nomad server or any agent).
    #[arg(long)]
    pub server: bool,

    /// Poll period, e.g. 10s, 1m, 1m30s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Leave out node_id/node_name/datacenter/node_class/node_pool tags on
    /// client gauges (the original tool's exact tag set: drain, status).
    #[arg(long)]
    pub no_identity_tags: bool,

    /// Ask Nomad for gzip-compressed answers: saves bandwidth on slow links,
    /// costs CPU on the Nomad servers (off: on a LAN it only costs).
    #[arg(long)]
    pub gzip: bool,

    /// --server: leave out the node census and capacity gauges (and the
    /// node and allocation lists they read): job counts only.
    #[arg(long)]
    pub no_cluster_view: bool,

    /// Let any Nomad server answer --server list queries, not only the
    /// leader (`?stale`): spreads the load, data may lag by a few ms.
    #[arg(long)]
    pub stale: bool,

    /// Read --server lists in pages of N items (Nomad 1.3+; 0 = one request).
    /// Spares Nomad servers building one huge answer; costs more requests.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub page_size: u32,

    /// Force a full re-read of what blocking queries keep (the --server
    /// lists without the event stream, the --client node and allocations)
    /// this often, even when Nomad reports no change.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_interval)]
    pub resync: Duration,

    /// --server on Nomad 1.0+: follow Nomad's event stream after one full
    /// read (`auto`), so that a busy cluster costs its changes, not its
    /// size; `off` keeps blocking queries. Falls back by itself where the
    /// stream cannot be used (old version, token without stream access).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub event_stream: EventStreamMode,

    /// --server while following the event stream: a full re-read this often
    /// as insurance (deletions Nomad does not announce). Versions whose job
    /// purge emits no event (before 1.7.5 / 1.8.0) use --resync instead when
    /// it is shorter.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_interval)]
    pub reconcile: Duration,

    /// --server: an event stream silent this long is taken as dead and
    /// opened again (Nomad sends a heartbeat every 30 s).
    #[arg(long, value_name = "DURATION", default_value = "65s", value_parser = parse_interval)]
    pub event_stream_timeout: Duration,

    /// Read the ACL token from this file instead of NOMAD_TOKEN.
    #[arg(long, value_name = "PATH")]
    pub nomad_token_file: Option<PathBuf>,

    /// Serve GET /healthz on this address (e.g. 0.0.0.0:8686): 200 while
    /// every mode polled successfully within the last 3 intervals, else 503.
    /// May equal --prometheus-listen: one listener then serves both paths.
    #[arg(long, value_name = "ADDR")]
    pub health_listen: Option<std::net::SocketAddr>,

    /// Serve GET /metrics on this address (e.g. 0.0.0.0:8686) in the
    /// Prometheus text format: the gauges of each mode's latest poll, tags
    /// and --tag/DD_TAGS as labels. May equal --health-listen: one listener
    /// then serves both /metrics and /healthz.
    #[arg(long, value_name = "ADDR")]
    pub prometheus_listen: Option<std::net::SocketAddr>,

    /// Send nothing to DogStatsD (needs --prometheus-listen): for
    /// Prometheus-only set-ups.
    #[arg(long, conflicts_with_all = ["statsd_host", "statsd_port", "statsd_socket", "dry_run"])]
    pub no_statsd: bool,

    /// Poll each enabled mode once, send, and exit (non-zero if a poll failed).
    #[arg(long)]
    pub once: bool,

    /// Print the DogStatsD lines to stdout instead of sending them.
    #[arg(long)]
    pub dry_run: bool,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--event-stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventStreamMode {
    /// Use the stream where it works, blocking queries elsewhere.
    Auto,
    /// Blocking queries only.
    Off,
}

/// Where Nomad's HTTP API listens by default.
pub const DEFAULT_NOMAD_ADDR: &str = "http://127.0.0.1:4646";

/// Smallest accepted `--interval`.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Largest accepted `--interval` / `--resync`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

fn parse_nomad_uri(raw: &str) -> Result<Url, String> {
    // An empty NOMAD_ADDR means "not set" to the nomad CLI.
    let raw = if raw.trim().is_empty() {
        DEFAULT_NOMAD_ADDR
    } else {
        raw
    };
    let url = Url::parse(raw.trim())
        .map_err(|e| format!("not a URL ({e}); expected e.g. http://127.0.0.1:4646"))?;
    match url.scheme() {
        "http" | "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err("the URL has no host".into());
            }
        }
        // The agent's Unix socket, e.g. the Task API socket a workload
        // identity gets at unix:///secrets/api.sock (NOMAD_UNIX_ADDR).
        "unix" => {
            if url.path().len() < 2 || url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(
                    "a unix:// address needs an absolute path: unix:///secrets/api.sock".into(),
                );
            }
        }
        other => return Err(format!("scheme {other:?} is not http, https or unix")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or fragment".into());
    }
    Ok(url)
}

fn parse_host(raw: &str) -> Result<String, String> {
    let host = raw.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err("a host name or IP address is expected, not a URL".into());
    }
    Ok(host.to_owned())
}

/// Characters allowed in a tag key (DogStatsD-safe).
pub fn valid_tag_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

fn parse_tag(raw: &str) -> Result<(String, String), String> {
    let (key, value) = raw
        .trim()
        .split_once(':')
        .ok_or_else(|| "expected KEY:VALUE".to_owned())?;
    if !valid_tag_key(key) {
        return Err(format!(
            "tag key {key:?} may only hold letters, digits and _ - . /"
        ));
    }
    if value.trim().is_empty() {
        return Err("empty tag value".into());
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn parse_interval(raw: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(raw.trim()).map_err(|e| format!("{e}; expected e.g. 10s, 1m"))?;
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(MIN_INTERVAL),
            humantime::format_duration(MAX_INTERVAL)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_interval("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("25h").is_err());
        assert!(parse_interval("500000000000y").is_err());
        assert!(parse_interval("ten").is_err());
        assert!(parse_interval("10").is_err());
    }

    #[test]
    fn nomad_uris() {
        assert!(parse_nomad_uri("http://localhost:4646").is_ok());
        assert!(parse_nomad_uri("https://nomad.example:4646/").is_ok());
        assert!(parse_nomad_uri("unix:///secrets/api.sock").is_ok());
        assert_eq!(
            parse_nomad_uri("").unwrap().as_str(),
            "http://127.0.0.1:4646/",
            "empty = unset"
        );
        assert!(parse_nomad_uri("unix://relative/api.sock").is_err());
        assert!(parse_nomad_uri("localhost:4646").is_err());
        assert!(parse_nomad_uri("ftp://x").is_err());
        assert!(parse_nomad_uri("not a url").is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(parse_tag("env:prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(parse_tag("a:b:c"), Ok(("a".into(), "b:c".into())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("bad key:x").is_err());
        assert!(parse_tag("k:").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("10.0.0.5").as_deref(), Ok("10.0.0.5"));
        assert_eq!(parse_host("[::1]").as_deref(), Ok("::1"));
        assert!(parse_host("").is_err());
        assert!(parse_host("udp://x").is_err());
    }
}
