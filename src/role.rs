//! The two Nomad roles the daemon reports on (`--client`, `--server`; the
//! flags say "mode", the code says "role"), and the names of each role's
//! health gauges.

use std::fmt;

use crate::gauges;

/// A Nomad role this daemon reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Client,
    Server,
}

/// The names of one role's health gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthNames {
    /// 1 if the last poll failed, else 0.
    pub poll_failure: &'static str,
    /// Wall time of the last poll, ms.
    pub poll_duration_ms: &'static str,
    /// Seconds since the last successful poll.
    pub last_success_age_s: &'static str,
}

impl Role {
    /// Every role, in the order the loops start.
    pub const ALL: [Role; 2] = [Role::Client, Role::Server];

    /// The role's name in logs and on `/healthz`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    /// The role's health gauges.
    #[must_use]
    pub const fn health_names(self) -> HealthNames {
        match self {
            Role::Client => HealthNames {
                poll_failure: gauges::CLIENT_POLL_FAILURE,
                poll_duration_ms: gauges::CLIENT_POLL_DURATION_MS,
                last_success_age_s: gauges::CLIENT_LAST_SUCCESS_AGE_S,
            },
            Role::Server => HealthNames {
                poll_failure: gauges::SERVER_POLL_FAILURE,
                poll_duration_ms: gauges::SERVER_POLL_DURATION_MS,
                last_success_age_s: gauges::SERVER_LAST_SUCCESS_AGE_S,
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
