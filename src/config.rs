//! (Over 450 lines only with its tests, which are 190 of them.)
//!
//! `StartArgs` + environment → a validated `Config`. Every rule that spans
//! flags (a role must be chosen), the `NOMAD_*` conventions, and derived
//! settings (the request timeout) live here; defaults live in `cli`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::cli::{valid_tag_key, EventStreamMode, LogFormat, StartArgs};
use crate::nomad::{NomadApiOptions, TlsOptions, TokenSource};
use crate::role::Role;
use crate::statsd::StatsdTarget;

/// Default DogStatsD address.
pub const DEFAULT_STATSD_HOST: &str = "127.0.0.1";
/// Default DogStatsD port.
pub const DEFAULT_STATSD_PORT: u16 = 8125;

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The roles polled (`--client`, `--server`): at least one, in
    /// `Role::ALL` order.
    pub roles: Vec<Role>,
    /// Poll period.
    pub interval: Duration,
    pub nomad: NomadApiOptions,
    /// `NOMAD_NAMESPACE`: count jobs in this namespace only (else all).
    pub namespace: Option<String>,
    /// Where DogStatsD gauges go; `None` with `--no-statsd`.
    pub statsd: Option<StatsdTarget>,
    /// Tag client gauges with the node's identity.
    pub identity_tags: bool,
    /// Tags added to every gauge.
    pub global_tags: Vec<(String, String)>,
    /// `--page-size`: read `--server` lists in pages of this many (Nomad 1.3+).
    pub page_size: Option<u32>,
    /// `--resync`: full re-read of `--server` lists at least this often.
    pub resync: Duration,
    /// `--stale`: any server may answer `--server` list queries.
    pub stale: bool,
    /// `--event-stream auto`: follow Nomad's event stream where it works.
    pub event_stream: bool,
    /// `--reconcile`: full re-read this often while following the stream.
    pub reconcile: Duration,
    /// `--event-stream-timeout`: silence after which a stream is reopened.
    pub event_stream_timeout: Duration,
    /// Census and capacity gauges (off with `--no-cluster-view`).
    pub cluster_view: bool,
    /// `--once`: one poll per role, then exit.
    pub once: bool,
    /// `--health-listen`.
    pub health_listen: Option<std::net::SocketAddr>,
    /// `--prometheus-listen`: serve `/metrics` here.
    pub prometheus_listen: Option<std::net::SocketAddr>,
    pub log_format: LogFormat,
    /// Problems worth a warning once logging is up (ignored `DD_TAGS` items).
    pub warnings: Vec<String>,
}

/// Per-request timeout for a poll period: 80 % of it, so a hanging Nomad
/// fails the poll before the next one is due.
#[must_use]
pub fn request_timeout(interval: Duration) -> Duration {
    interval.mul_f64(0.8)
}

impl Config {
    /// Validates `args` and reads the Nomad environment through `env`.
    ///
    /// # Errors
    ///
    /// No role chosen; an unreadable token file; a malformed `NOMAD_*` value.
    pub fn from_args(
        args: StartArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        if !args.client && !args.server {
            bail!("choose at least one mode: --client and/or --server");
        }
        if args.no_statsd && args.prometheus_listen.is_none() {
            bail!("--no-statsd needs --prometheus-listen: otherwise nothing would be reported");
        }
        let env_nonempty = |key: &str| {
            env(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let token = match (&args.nomad_token_file, env_nonempty("NOMAD_TOKEN")) {
            (Some(path), _) => TokenSource::File(path.clone()),
            (None, Some(token)) => TokenSource::Value(token),
            (None, None) => TokenSource::None,
        };
        let skip_verify = match env_nonempty("NOMAD_SKIP_VERIFY") {
            Some(v) => parse_go_bool(&v)
                .with_context(|| format!("NOMAD_SKIP_VERIFY={v:?} is not a boolean"))?,
            None => false,
        };
        let tls = TlsOptions {
            ca_cert: env_nonempty("NOMAD_CACERT").map(PathBuf::from),
            ca_path: env_nonempty("NOMAD_CAPATH").map(PathBuf::from),
            client_cert: env_nonempty("NOMAD_CLIENT_CERT").map(PathBuf::from),
            client_key: env_nonempty("NOMAD_CLIENT_KEY").map(PathBuf::from),
            skip_verify,
            server_name: env_nonempty("NOMAD_TLS_SERVER_NAME"),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            bail!("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together");
        }
        let mut warnings = Vec::new();
        let global_tags = global_tags(&args.tags, &env_nonempty, &mut warnings);
        let statsd = if args.no_statsd {
            None
        } else {
            Some(statsd_target(&args, &env_nonempty)?)
        };
        Ok(Self {
            roles: Role::ALL
                .into_iter()
                .filter(|role| match role {
                    Role::Client => args.client,
                    Role::Server => args.server,
                })
                .collect(),
            interval: args.interval,
            nomad: NomadApiOptions {
                base: args.nomad_uri,
                token,
                region: env_nonempty("NOMAD_REGION"),
                timeout: request_timeout(args.interval),
                gzip: args.gzip,
                tls,
            },
            namespace: env_nonempty("NOMAD_NAMESPACE"),
            statsd,
            identity_tags: !args.no_identity_tags,
            global_tags,
            page_size: (args.page_size > 0).then_some(args.page_size),
            resync: args.resync,
            stale: args.stale,
            event_stream: args.event_stream == EventStreamMode::Auto,
            reconcile: args.reconcile,
            event_stream_timeout: args.event_stream_timeout,
            cluster_view: !args.no_cluster_view,
            once: args.once,
            health_listen: args.health_listen,
            prometheus_listen: args.prometheus_listen,
            log_format: args.log_format,
            warnings,
        })
    }
}

/// Where gauges go; first match wins: `--dry-run`; `--statsd-socket`;
/// `--statsd-host`/`--statsd-port`; `DD_DOGSTATSD_URL`;
/// `DD_DOGSTATSD_SOCKET`; `DD_AGENT_HOST`/`DD_DOGSTATSD_PORT`; defaults.
fn statsd_target(
    args: &StartArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<StatsdTarget> {
    if args.dry_run {
        return Ok(StatsdTarget::Stdout);
    }
    if let Some(path) = &args.statsd_socket {
        return Ok(StatsdTarget::Unix(path.clone()));
    }
    let env_port = || -> anyhow::Result<Option<u16>> {
        env("DD_DOGSTATSD_PORT")
            .map(|p| match p.parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(anyhow::anyhow!(
                    "DD_DOGSTATSD_PORT={p:?} is not a port number"
                )),
            })
            .transpose()
    };
    if args.statsd_host.is_some() || args.statsd_port.is_some() {
        return Ok(StatsdTarget::Udp {
            host: args
                .statsd_host
                .clone()
                .or_else(|| env("DD_AGENT_HOST"))
                .unwrap_or_else(|| DEFAULT_STATSD_HOST.to_owned()),
            port: match args.statsd_port {
                Some(p) => p,
                None => env_port()?.unwrap_or(DEFAULT_STATSD_PORT),
            },
        });
    }
    if let Some(url) = env("DD_DOGSTATSD_URL") {
        return parse_dogstatsd_url(&url).with_context(|| format!("DD_DOGSTATSD_URL={url:?}"));
    }
    if let Some(path) = env("DD_DOGSTATSD_SOCKET") {
        return Ok(StatsdTarget::Unix(PathBuf::from(path)));
    }
    Ok(StatsdTarget::Udp {
        host: env("DD_AGENT_HOST").unwrap_or_else(|| DEFAULT_STATSD_HOST.to_owned()),
        port: env_port()?.unwrap_or(DEFAULT_STATSD_PORT),
    })
}

/// `udp://host:port` (port optional) or `unix:///path`.
fn parse_dogstatsd_url(raw: &str) -> anyhow::Result<StatsdTarget> {
    if let Some(path) = raw.strip_prefix("unix://") {
        if !path.starts_with('/') {
            bail!("a unix:// URL needs an absolute path (unix:///var/run/datadog/dsd.socket)");
        }
        return Ok(StatsdTarget::Unix(PathBuf::from(path)));
    }
    let url = url::Url::parse(raw).context("not a URL")?;
    if url.scheme() != "udp" {
        bail!("scheme {:?} is neither udp nor unix", url.scheme());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .context("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(StatsdTarget::Udp {
        host,
        port: url.port().unwrap_or(DEFAULT_STATSD_PORT),
    })
}

/// `--tag`s, then `DD_TAGS` (comma or space separated `key:value`), then
/// `DD_ENV`/`DD_SERVICE`/`DD_VERSION` and `DD_ENTITY_ID`; a key given twice
/// keeps its first value.
fn global_tags(
    flags: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = flags.to_vec();
    if let Some(dd_tags) = env("DD_TAGS") {
        for item in dd_tags
            .split([',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            match item.split_once(':') {
                Some((k, v)) if valid_tag_key(k) && !v.is_empty() => {
                    tags.push((k.to_owned(), v.to_owned()))
                }
                _ => warnings.push(format!(
                    "DD_TAGS item {item:?} is not KEY:VALUE with a safe key; ignored"
                )),
            }
        }
    }
    for (var, key) in [
        ("DD_ENV", "env"),
        ("DD_SERVICE", "service"),
        ("DD_VERSION", "version"),
        ("DD_ENTITY_ID", "dd.internal.entity_id"),
    ] {
        if let Some(v) = env(var) {
            tags.push((key.to_owned(), v));
        }
    }
    let mut seen = std::collections::HashSet::new();
    tags.retain(|(k, _)| seen.insert(k.clone()));
    tags.into_iter()
        .filter_map(|(k, v)| {
            let value = crate::gauges::TagValue::new(&v)?;
            Some((k, value.as_str().to_owned()))
        })
        .collect()
}

/// Go's `strconv.ParseBool`, which the `nomad` CLI uses for `NOMAD_SKIP_VERIFY`.
fn parse_go_bool(v: &str) -> anyhow::Result<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => bail!("expected true or false"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(line: &[&str]) -> StartArgs {
        let mut argv = vec!["nomad-metrics", "start"];
        argv.extend_from_slice(line);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Start(a)) => a,
            Ok(other) => panic!("not a start command line: {other:?}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_mode_is_required() {
        let err = Config::from_args(args(&[]), &|_| None).unwrap_err();
        assert!(err.to_string().contains("--client"), "{err}");
    }

    #[test]
    fn reads_the_nomad_environment() {
        let env = |k: &str| {
            match k {
                "NOMAD_TOKEN" => Some("s3cr3t"),
                "NOMAD_REGION" => Some("eu"),
                "NOMAD_NAMESPACE" => Some("ci"),
                "NOMAD_SKIP_VERIFY" => Some("1"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let cfg = Config::from_args(args(&["--server", "--interval", "5s"]), &env).unwrap();
        assert!(matches!(&cfg.nomad.token, TokenSource::Value(t) if t == "s3cr3t"));
        assert_eq!(cfg.nomad.region.as_deref(), Some("eu"));
        assert_eq!(cfg.namespace.as_deref(), Some("ci"));
        assert!(cfg.nomad.tls.skip_verify);
        assert_eq!(cfg.nomad.timeout, Duration::from_secs(4));
        assert!(
            !format!("{cfg:?}").contains("s3cr3t"),
            "Debug must redact the token"
        );
    }

    #[test]
    fn rejects_bad_skip_verify_and_half_mtls() {
        let env = |k: &str| (k == "NOMAD_SKIP_VERIFY").then(|| "maybe".to_owned());
        assert!(Config::from_args(args(&["--client"]), &env).is_err());
        let env = |k: &str| (k == "NOMAD_CLIENT_CERT").then(|| "/x.pem".to_owned());
        assert!(Config::from_args(args(&["--client"]), &env).is_err());
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn statsd_destination_precedence() {
        let udp = |h: &str, p| StatsdTarget::Udp {
            host: h.to_owned(),
            port: p,
        };
        let cfg = |line: &[&str], env: &'static [(&'static str, &'static str)]| {
            Config::from_args(args(line), &env_of(env))
                .unwrap()
                .statsd
                .unwrap()
        };
        assert_eq!(cfg(&["--client"], &[]), udp("127.0.0.1", 8125));
        assert_eq!(
            cfg(
                &["--client"],
                &[("DD_AGENT_HOST", "dd"), ("DD_DOGSTATSD_PORT", "9125")]
            ),
            udp("dd", 9125)
        );
        assert_eq!(
            cfg(
                &["--client"],
                &[
                    ("DD_DOGSTATSD_URL", "udp://[::1]:7000"),
                    ("DD_AGENT_HOST", "dd")
                ]
            ),
            udp("::1", 7000)
        );
        assert_eq!(
            cfg(
                &["--client"],
                &[("DD_DOGSTATSD_URL", "unix:///run/dsd.sock")]
            ),
            StatsdTarget::Unix("/run/dsd.sock".into())
        );
        assert_eq!(
            cfg(&["--client"], &[("DD_DOGSTATSD_SOCKET", "/s")]),
            StatsdTarget::Unix("/s".into())
        );
        assert_eq!(
            cfg(
                &["--client", "--statsd-host=10.0.0.5"],
                &[
                    ("DD_DOGSTATSD_URL", "unix:///x"),
                    ("DD_DOGSTATSD_PORT", "9")
                ]
            ),
            udp("10.0.0.5", 9)
        );
        assert_eq!(
            cfg(&["--client", "--statsd-socket=/a", "--statsd-host=h"], &[]),
            StatsdTarget::Unix("/a".into())
        );
        assert_eq!(
            cfg(&["--client", "--dry-run", "--statsd-socket=/a"], &[]),
            StatsdTarget::Stdout
        );
        for bad in ["http://x", "unix://relative", "udp://"] {
            let env: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("DD_DOGSTATSD_URL", bad)]));
            assert!(
                Config::from_args(args(&["--client"]), &env_of(env)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_statsd_needs_prometheus() {
        let err = Config::from_args(args(&["--client", "--no-statsd"]), &|_| None).unwrap_err();
        assert!(err.to_string().contains("--prometheus-listen"), "{err}");
        // A malformed DogStatsD variable does not matter when it is unused.
        let env = env_of(&[("DD_DOGSTATSD_URL", "http://x")]);
        let line = ["--client", "--no-statsd", "--prometheus-listen=127.0.0.1:0"];
        let cfg = Config::from_args(args(&line), &env).unwrap();
        assert_eq!(cfg.statsd, None);
        assert_eq!(cfg.prometheus_listen, Some(([127, 0, 0, 1], 0).into()));
        let clash = ["--client", "--no-statsd", "--statsd-host=h"];
        let Err(err) = Cli::try_parse_from(["nomad-metrics", "start"].iter().chain(&clash)) else {
            panic!("--no-statsd with --statsd-host must be refused");
        };
        assert!(err.to_string().contains("--statsd-host"), "{err}");
    }

    #[test]
    fn global_tags_from_flags_and_datadog_env() {
        let env = env_of(&[
            ("DD_TAGS", "team:infra, region:eu-west-1 bare,b@d:x"),
            ("DD_ENV", "prod"),
            ("DD_SERVICE", "nomad metrics"),
            ("DD_ENTITY_ID", "pod-uid-1"),
        ]);
        let cfg = Config::from_args(
            args(&["--client", "--tag", "env:staging", "--tag=cluster:ci"]),
            &env,
        )
        .unwrap();
        let tags: Vec<String> = cfg
            .global_tags
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        assert_eq!(
            tags,
            [
                "env:staging",
                "cluster:ci",
                "team:infra",
                "region:eu-west-1",
                "service:nomad_metrics",
                "dd.internal.entity_id:pod-uid-1"
            ]
        );
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
    }

    #[test]
    fn go_bools() {
        assert!(parse_go_bool("True").unwrap());
        assert!(!parse_go_bool("0").unwrap());
        assert!(parse_go_bool("yes").is_err());
    }
}
