//! The daemon's own HTTP listeners (`--health-listen`, and the exposition
//! of `prometheus`): a tiny HTTP/1 server per address that answers `GET` and
//! `HEAD` of an exact path from an `Endpoint`, and 404 for anything else.
//! Several endpoints asked for on the same address share one listener. This
//! module knows nothing of health or metrics: each endpoint renders itself.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A slow or stuck HTTP client loses its connection after this long.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What an endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    pub body: String,
}

/// One path served by a listener. `reply` runs on the listener's task for
/// every request, so it must be quick and must not wait on a poll.
pub trait Endpoint: Send + Sync {
    /// The exact path, e.g. `/healthz`.
    fn path(&self) -> &'static str;
    /// The answer to `GET` (and `HEAD`) of `path`.
    fn reply(&self) -> Reply;
}

type Endpoints = Vec<Arc<dyn Endpoint>>;

/// One endpoint asked for on the command line.
pub struct Wanted {
    /// The flag that asked for it, for error messages (`--health-listen`).
    pub flag: &'static str,
    pub addr: SocketAddr,
    pub endpoint: Arc<dyn Endpoint>,
}

/// Binds every address in `wanted` (endpoints asking for the same address
/// share one listener) and serves them until `shutdown`.
///
/// # Errors
///
/// An address cannot be bound (in use, not local, no permission); nothing
/// is served then.
pub async fn start(wanted: Vec<Wanted>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    // addr → (the flags that asked for it, its endpoints)
    let mut by_addr: BTreeMap<SocketAddr, (Vec<&'static str>, Endpoints)> = BTreeMap::new();
    for w in wanted {
        let entry = by_addr.entry(w.addr).or_default();
        entry.0.push(w.flag);
        entry.1.push(w.endpoint);
    }
    let mut bound = Vec::with_capacity(by_addr.len());
    for (addr, (flags, endpoints)) in by_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {} {addr}", flags.join(" and ")))?;
        bound.push((addr, listener, endpoints));
    }
    for (addr, listener, endpoints) in bound {
        let paths: Vec<&str> = endpoints.iter().map(|e| e.path()).collect();
        tracing::info!(addr = %addr, "serving {}", paths.join(", "));
        tokio::spawn(serve(listener, endpoints, shutdown.clone()));
    }
    Ok(())
}

/// Serves `endpoints` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    endpoints: Vec<Arc<dyn Endpoint>>,
    shutdown: CancellationToken,
) {
    let endpoints: Arc<[Arc<dyn Endpoint>]> = endpoints.into();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: do not spin.
                tracing::debug!(error = %err, "HTTP listener accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let endpoints = Arc::clone(&endpoints);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let endpoints = Arc::clone(&endpoints);
                async move { Ok::<_, Infallible>(answer(&req, &endpoints)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A slow or broken client only loses its own connection.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn answer<B>(req: &Request<B>, endpoints: &[Arc<dyn Endpoint>]) -> Response<Full<Bytes>> {
    let found = matches!(req.method(), &Method::GET | &Method::HEAD)
        .then(|| endpoints.iter().find(|e| e.path() == req.uri().path()))
        .flatten();
    let reply = match found {
        Some(endpoint) => endpoint.reply(),
        None => {
            let paths: Vec<&str> = endpoints.iter().map(|e| e.path()).collect();
            Reply {
                status: StatusCode::NOT_FOUND,
                content_type: "text/plain; charset=utf-8",
                body: format!("not found; try {}\n", paths.join(", ")),
            }
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, &'static str);

    impl Endpoint for Fixed {
        fn path(&self) -> &'static str {
            self.0
        }
        fn reply(&self) -> Reply {
            Reply {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.1.to_owned(),
            }
        }
    }

    #[tokio::test]
    async fn routes_by_exact_path_and_shares_one_address() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let stop = CancellationToken::new();
        let wanted = |flag, endpoint: Arc<dyn Endpoint>| Wanted {
            flag,
            addr,
            endpoint,
        };
        start(
            vec![
                wanted("--a", Arc::new(Fixed("/a", "one"))),
                wanted("--b", Arc::new(Fixed("/b", "two"))),
            ],
            &stop,
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("http://{addr}{path}")).send();
        let a = get("/a").await.unwrap();
        assert_eq!(a.status(), 200);
        assert_eq!(
            a.headers()[CONTENT_TYPE.as_str()],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(a.text().await.unwrap(), "one");
        assert_eq!(get("/b").await.unwrap().text().await.unwrap(), "two");
        let missing = get("/a/").await.unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.text().await.unwrap(), "not found; try /a, /b\n");
        let post = http.post(format!("http://{addr}/a")).send().await.unwrap();
        assert_eq!(post.status(), 404);

        let err = start(vec![wanted("--c", Arc::new(Fixed("/c", "")))], &stop)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot listen on --c 127.0.0.1:"),
            "{err}"
        );
        stop.cancel();
    }
}
