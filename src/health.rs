//! `--health-listen`: `GET /healthz` answers 200 while every enabled role
//! has polled successfully within the last three intervals (or the daemon
//! started less than three intervals ago), else 503 with the reason. For
//! container and Kubernetes probes. The HTTP side is `listen`'s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;
use tokio::time::Instant;

use crate::listen::{Endpoint, Reply};
use crate::role::Role;

/// A role is unhealthy after this many intervals without a successful poll.
pub const STALE_AFTER_INTERVALS: u32 = 3;

#[derive(Debug, Clone)]
struct RoleState {
    last_success: Option<Instant>,
    last_error: Option<String>,
}

/// What each enabled role last did.
#[derive(Debug)]
pub struct HealthBoard {
    interval: Duration,
    started: Instant,
    roles: Mutex<BTreeMap<Role, RoleState>>,
}

impl HealthBoard {
    #[must_use]
    pub fn new(interval: Duration, roles: &[Role]) -> Arc<Self> {
        let state = RoleState {
            last_success: None,
            last_error: None,
        };
        Arc::new(Self {
            interval,
            started: Instant::now(),
            roles: Mutex::new(roles.iter().map(|&r| (r, state.clone())).collect()),
        })
    }

    /// Records a poll's outcome; `error` is the one-line reason of a failure.
    pub fn record(&self, role: Role, error: Option<String>) {
        let Ok(mut roles) = self.roles.lock() else {
            return;
        };
        let Some(state) = roles.get_mut(&role) else {
            return;
        };
        match error {
            None => {
                state.last_success = Some(Instant::now());
                state.last_error = None;
            }
            Some(e) => state.last_error = Some(e),
        }
    }

    /// (healthy, one line per role).
    #[must_use]
    pub fn verdict(&self) -> (bool, String) {
        let limit = self.interval * STALE_AFTER_INTERVALS;
        let Ok(roles) = self.roles.lock() else {
            return (false, "health state unavailable\n".into());
        };
        let mut healthy = true;
        let mut text = String::new();
        for (role, state) in roles.iter() {
            let since = state.last_success.unwrap_or(self.started);
            let age = since.elapsed();
            let ok = age < limit;
            healthy &= ok;
            let what = match (ok, state.last_success) {
                (true, Some(_)) => format!("ok (last success {}s ago)", age.as_secs()),
                (true, None) => "starting".to_owned(),
                (false, Some(_)) => format!("no successful poll for {}s", age.as_secs()),
                (false, None) => format!("no successful poll since start ({}s)", age.as_secs()),
            };
            text.push_str(&format!("{role}: {what}"));
            if let Some(e) = &state.last_error {
                text.push_str(&format!("; last error: {e}"));
            }
            text.push('\n');
        }
        (healthy, text)
    }
}

impl Endpoint for HealthBoard {
    fn path(&self) -> &'static str {
        "/healthz"
    }

    fn reply(&self) -> Reply {
        let (healthy, body) = self.verdict();
        Reply {
            status: if healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn healthy_while_recent_successes() {
        let board = HealthBoard::new(Duration::from_secs(10), &[Role::Client, Role::Server]);
        let (ok, text) = board.verdict();
        assert!(ok, "starting grace: {text}");
        assert!(text.contains("client: starting"));
        tokio::time::advance(Duration::from_secs(31)).await;
        let (ok, text) = board.verdict();
        assert!(!ok);
        assert!(text.contains("no successful poll since start"), "{text}");
        board.record(Role::Client, None);
        board.record(Role::Server, None);
        assert!(board.verdict().0);
        tokio::time::advance(Duration::from_secs(25)).await;
        board.record(Role::Server, Some("Nomad answered 500".into()));
        let (ok, text) = board.verdict();
        assert!(ok, "25 s < 3 intervals: {text}");
        assert!(
            text.contains("server: ok (last success 25s ago); last error: Nomad answered 500"),
            "{text}"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        board.record(Role::Client, None);
        let (ok, text) = board.verdict();
        assert!(!ok, "server stale for 31 s: {text}");
        assert!(
            text.contains("server: no successful poll for 31s"),
            "{text}"
        );
    }
}
