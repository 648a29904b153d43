//! HTTPS to Nomad as the `nomad` CLI does it: certificates are verified
//! (NOMAD_CACERT or NOMAD_CAPATH) unless NOMAD_SKIP_VERIFY says otherwise,
//! NOMAD_TLS_SERVER_NAME names the certificate, and NOMAD_CLIENT_CERT /
//! NOMAD_CLIENT_KEY answer a server that requires client certificates.

use crate::support::tls::{pki, server_config};
use crate::support::*;

/// Runs `--client` against an HTTPS fake; returns the first poll's failure flag.
async fn first_poll_failed(nomad: &FakeNomad, env: &[(&str, &str)]) -> f64 {
    let statsd = StatsdCapture::start().await;
    let url = format!("https://127.0.0.1:{}", nomad.addr.port());
    let port = statsd.port().to_string();
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--client"]), env));
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    let failed = by_name(&poll)[&format!("{CLIENT}poll_failure")];
    if failed == 0.0 {
        let e = fixture("1.11.0", "expected.json");
        assert_eq!(
            by_name(&poll)[&format!("{CLIENT}resources.total.cpu")],
            e["client"]["total"][0].as_f64().unwrap()
        );
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified() {
    let pki = pki("verify", &["127.0.0.1"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, false)).await;
    let ca = pki.ca_pem.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CACERT", ca)]).await,
        0.0,
        "trusted CA"
    );
    assert_eq!(
        first_poll_failed(&nomad, &[]).await,
        1.0,
        "unknown CA is refused by default"
    );
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_SKIP_VERIFY", "true")]).await,
        0.0,
        "explicitly skipped"
    );
}

/// NOMAD_CAPATH laid out as a Kubernetes Secret mounts it: the visible
/// `ca.crt` is a link into a hidden, timestamped folder. Another CA in a
/// sub-folder is read too; NOMAD_CACERT, when set, wins (as in the CLI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_directory() {
    let other = pki("capath-other", &["127.0.0.1"]);
    let pki = pki("capath", &["127.0.0.1"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, false)).await;
    let dir = pki.dir.join("cas");
    let stamped = dir.join("..2026_11_22_04_00_00.1");
    std::fs::create_dir_all(&stamped).unwrap();
    std::fs::copy(&pki.ca_pem, stamped.join("ca.crt")).unwrap();
    std::os::unix::fs::symlink("..2026_11_22_04_00_00.1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ca.crt", dir.join("ca.crt")).unwrap();
    std::fs::create_dir_all(dir.join("more")).unwrap();
    std::fs::copy(&other.ca_pem, dir.join("more/other.pem")).unwrap();
    let capath = dir.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CAPATH", capath)]).await,
        0.0,
        "the CA is in the directory"
    );
    let only_other = other.dir.join("cas");
    std::fs::create_dir_all(&only_other).unwrap();
    std::fs::copy(&other.ca_pem, only_other.join("ca.pem")).unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CAPATH", only_other.to_str().unwrap())]).await,
        1.0,
        "the directory replaces the public roots and lacks the CA"
    );
    let env = [
        ("NOMAD_CACERT", other.ca_pem.to_str().unwrap()),
        ("NOMAD_CAPATH", capath),
    ];
    assert_eq!(
        first_poll_failed(&nomad, &env).await,
        1.0,
        "NOMAD_CACERT wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_name() {
    // Nomad's own certificates name `server.<region>.nomad`, not the address.
    let pki = pki("name", &["server.global.nomad"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, false)).await;
    let ca = pki.ca_pem.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CACERT", ca)]).await,
        1.0,
        "name mismatch"
    );
    let env = [
        ("NOMAD_CACERT", ca),
        ("NOMAD_TLS_SERVER_NAME", "server.global.nomad"),
    ];
    assert_eq!(first_poll_failed(&nomad, &env).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let pki = pki("mtls", &["127.0.0.1"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, true)).await;
    let ca = pki.ca_pem.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CACERT", ca)]).await,
        1.0,
        "no client certificate"
    );
    let env = [
        ("NOMAD_CACERT", ca),
        ("NOMAD_CLIENT_CERT", pki.client_cert.to_str().unwrap()),
        ("NOMAD_CLIENT_KEY", pki.client_key.to_str().unwrap()),
    ];
    assert_eq!(first_poll_failed(&nomad, &env).await, 0.0);
}

/// A CA file or directory that is not PEM is a start-up error naming the
/// setting and the file, not a silent fallback.
#[test]
fn bad_ca_settings_are_start_up_errors() {
    let dir = TempDir::new("badca");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = dir.join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let run = |var: &str, value: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nomad-metrics"))
            .args(["start", "--client", "--once", "--dry-run"])
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={}", value.display());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cacert = run("NOMAD_CACERT", &bad);
    let capath_bad = run("NOMAD_CAPATH", &dir);
    let capath_empty = run("NOMAD_CAPATH", &empty);
    let capath_missing = run("NOMAD_CAPATH", &dir.join("missing"));
    drop(dir);
    assert!(
        cacert.contains("NOMAD_CACERT file") && cacert.contains("ca.pem"),
        "{cacert}"
    );
    assert!(
        capath_bad.contains("NOMAD_CAPATH file") && capath_bad.contains("ca.pem"),
        "{capath_bad}"
    );
    assert!(
        capath_empty.contains("holds no certificate"),
        "{capath_empty}"
    );
    assert!(
        capath_missing.contains("cannot read NOMAD_CAPATH directory"),
        "{capath_missing}"
    );
}
