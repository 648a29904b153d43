//! The simulated Nomad's HTTP API on a loopback port: the endpoints the
//! daemon reads, answered from `Sim` as `json` renders it, with
//! `X-Nomad-Index` on the list and node endpoints and Nomad's blocking
//! queries (`?index=N&wait=D`: answer once the index passes N, or after D,
//! at most 5 minutes). A task steps the simulation every `step_every` and
//! wakes parked queries. Not simulated: paging (`per_page` is ignored, the
//! whole list is one page), ACLs, gzip, regions, and `filter` expressions
//! other than the daemon's own non-terminal filter (others answer 400).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::json;
use super::sim::Sim;
use crate::nomad::queries::NON_TERMINAL_FILTER;

/// Nomad's cap on a blocking query's wait.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// A running simulated Nomad.
#[derive(Debug, Clone)]
pub struct Simulator {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    sim: Arc<Mutex<Sim>>,
}

impl Simulator {
    /// Binds 127.0.0.1:0 and serves until `shutdown`; the cluster takes a
    /// step every `step_every`.
    ///
    /// # Errors
    ///
    /// The port cannot be bound.
    pub async fn start(
        seed: u64,
        step_every: Duration,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Mutex::new(Sim::new(seed)));
        let (changed, _) = watch::channel(0u64);
        tokio::spawn(step_loop(
            Arc::clone(&sim),
            step_every,
            changed.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(serve(listener, Arc::clone(&sim), changed, shutdown));
        Ok(Self { addr, sim })
    }

    /// Steps taken so far.
    #[must_use]
    pub fn steps(&self) -> u64 {
        lock(&self.sim).step
    }
}

fn lock(sim: &Mutex<Sim>) -> std::sync::MutexGuard<'_, Sim> {
    // A panic while holding the lock cannot leave `Sim` half-updated in a
    // way that matters to a demo; keep serving.
    sim.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn step_loop(
    sim: Arc<Mutex<Sim>>,
    every: Duration,
    changed: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    // The first step places the initial jobs at once.
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let index = {
            let mut sim = lock(&sim);
            sim.step();
            sim.index
        };
        changed.send_replace(index);
    }
}

async fn serve(
    listener: TcpListener,
    sim: Arc<Mutex<Sim>>,
    changed: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (sim, changed, stop) = (Arc::clone(&sim), changed.subscribe(), shutdown.clone());
        let conn_stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (sim, changed, stop) = (Arc::clone(&sim), changed.clone(), stop.clone());
                async move { Ok::<_, Infallible>(answer(&req, &sim, changed, &stop).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                () = conn_stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

/// Which index a path's answer carries and blocks on.
#[derive(Debug, Clone, Copy)]
enum Watched {
    Jobs,
    Nodes,
    Allocs,
}

fn index_of(sim: &Sim, watched: Watched) -> u64 {
    match watched {
        Watched::Jobs => sim.jobs_index,
        Watched::Nodes => sim.nodes_index,
        Watched::Allocs => sim.allocs_index,
    }
}

async fn answer<B>(
    req: &Request<B>,
    sim: &Mutex<Sim>,
    mut changed: watch::Receiver<u64>,
    shutdown: &CancellationToken,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Invalid method");
    }
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let watched = match parts.as_slice() {
        ["v1", "jobs"] => Some(Watched::Jobs),
        ["v1", "nodes"] | ["v1", "node", _] => Some(Watched::Nodes),
        ["v1", "allocations"] | ["v1", "node", _, "allocations"] => Some(Watched::Allocs),
        _ => None,
    };
    if let (Some(watched), Some(raw)) = (watched, query.get("index")) {
        let Ok(min) = raw.parse::<u64>() else {
            return text(StatusCode::BAD_REQUEST, "Invalid index");
        };
        let wait = match query.get("wait") {
            Some(w) => match humantime::parse_duration(w) {
                Ok(d) => d.min(MAX_WAIT),
                Err(_) => return text(StatusCode::BAD_REQUEST, "Invalid wait"),
            },
            None => MAX_WAIT,
        };
        let deadline = Instant::now() + wait;
        while index_of(&lock(sim), watched) <= min {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(deadline) => break,
                moved = changed.changed() => if moved.is_err() { break },
            }
        }
    }
    let sim = lock(sim);
    let resources = query.get("resources").map(String::as_str) == Some("true");
    let namespace = query.get("namespace").map_or("default", String::as_str);
    let in_namespace = |ns: &str| namespace == "*" || namespace == ns;
    let body = match parts.as_slice() {
        ["v1", "agent", "self"] => json::agent_self(&sim),
        ["v1", "status", "leader"] => Value::from("127.0.0.1:4647"),
        ["v1", "node", id] => match sim.nodes.iter().find(|n| n.id == *id) {
            Some(node) => json::node(node, true, true),
            None => return text(StatusCode::NOT_FOUND, "node not found"),
        },
        ["v1", "node", id, "allocations"] => {
            let Some(n) = sim.nodes.iter().position(|n| n.id == *id) else {
                return text(StatusCode::NOT_FOUND, "node not found");
            };
            let allocs = sim.allocs.iter().filter(|a| a.node == n);
            Value::Array(allocs.map(|a| json::alloc(&sim, a, true, true)).collect())
        }
        ["v1", "nodes"] => {
            let nodes = sim.nodes.iter().map(|n| json::node(n, false, resources));
            Value::Array(nodes.collect())
        }
        ["v1", "jobs"] => {
            let jobs = sim.jobs.iter().filter(|j| in_namespace(j.namespace));
            Value::Array(jobs.map(|j| json::job(&sim, j)).collect())
        }
        ["v1", "allocations"] => {
            let live_only = match query.get("filter").map(String::as_str) {
                None => false,
                Some(NON_TERMINAL_FILTER) => true,
                Some(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "the simulator only knows the non-terminal filter",
                    )
                }
            };
            let allocs = sim
                .allocs
                .iter()
                .filter(|a| in_namespace(a.namespace) && (!live_only || a.is_live()));
            Value::Array(
                allocs
                    .map(|a| json::alloc(&sim, a, false, resources))
                    .collect(),
            )
        }
        _ => return text(StatusCode::NOT_FOUND, "404 page not found"),
    };
    let index = watched.map(|w| index_of(&sim, w));
    drop(sim);
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(index) = index {
        headers.insert("x-nomad-index", index.into());
        headers.insert(
            "x-nomad-knownleader",
            hyper::header::HeaderValue::from_static("true"),
        );
        headers.insert(
            "x-nomad-lastcontact",
            hyper::header::HeaderValue::from_static("0"),
        );
    }
    response
}

/// A plain-text error, as Nomad answers them.
fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::{NomadApi, NomadApiOptions, TlsOptions, TokenSource};

    fn api(addr: SocketAddr) -> NomadApi {
        NomadApi::new(NomadApiOptions {
            base: url::Url::parse(&format!("http://{addr}")).unwrap(),
            token: TokenSource::None,
            region: None,
            timeout: Duration::from_secs(5),
            gzip: false,
            tls: TlsOptions::default(),
        })
        .unwrap()
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, Option<u64>, String) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let status = response.status().as_u16();
        let index = response
            .headers()
            .get("x-nomad-index")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        (status, index, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn serves_the_client_role_endpoints() {
        let stop = CancellationToken::new();
        let sim = Simulator::start(1, Duration::from_millis(50), stop.clone())
            .await
            .unwrap();
        let api = api(sim.addr);
        let agent = api.agent_self().await.unwrap();
        let id = agent.node_id().unwrap().to_owned();
        let (node, _) = api.node_blocking(&id, None).await.unwrap().unwrap();
        assert_eq!(node.id, id);
        let plan = crate::nomad::queries::ListPlan::node_allocations(&id);
        let mut allocs = 0;
        api.list(&plan.query(None), |_: crate::nomad::model::Alloc| {
            allocs += 1
        })
        .await
        .unwrap();
        assert!(allocs > 0, "the agent's node runs at least the system job");
        assert_eq!(api.leader().await.unwrap(), "127.0.0.1:4647");
        assert_eq!(get(sim.addr, "/v1/node/nope").await.0, 404);
        assert_eq!(get(sim.addr, "/v1/elsewhere").await.0, 404);
        stop.cancel();
    }

    #[tokio::test]
    async fn blocking_queries_wait_for_the_index_to_move() {
        let stop = CancellationToken::new();
        let sim = Simulator::start(1, Duration::from_millis(200), stop.clone())
            .await
            .unwrap();
        let (status, index, body) = get(sim.addr, "/v1/jobs?namespace=*").await;
        assert_eq!(status, 200);
        let index = index.expect("X-Nomad-Index");
        assert!(body.contains("\"web\""), "{body}");
        // An index from the future: nothing can pass it, the wait elapses.
        let started = Instant::now();
        let (_, same, _) = get(
            sim.addr,
            &format!("/v1/jobs?index={}&wait=300ms", u64::MAX - 1),
        )
        .await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(same.is_some());
        // The current index: answered once the cluster changes.
        let (_, moved, _) = get(sim.addr, &format!("/v1/jobs?index={index}&wait=10s")).await;
        assert!(moved.unwrap() > index);
        let filtered = format!(
            "/v1/allocations?namespace=*&resources=true&filter={}",
            url::form_urlencoded::byte_serialize(NON_TERMINAL_FILTER.as_bytes())
                .collect::<String>()
        );
        assert_eq!(get(sim.addr, &filtered).await.0, 200);
        assert_eq!(get(sim.addr, "/v1/allocations?filter=x").await.0, 400);
        stop.cancel();
    }
}
