//! POLL: everything that knows HTTP or Nomad's JSON. Callers get typed
//! models (`model`) or a typed `NomadError`; no gauge or DogStatsD type is
//! known here.

pub mod api;
pub mod error;
pub mod events;
pub mod features;
pub mod list;
pub mod model;
pub mod queries;
pub mod skim;
pub mod stream;
pub mod tls;
pub mod token;
pub mod watch;

pub use api::{EventStream, NomadApi, NomadApiOptions};
pub use error::NomadError;
pub use features::Features;
pub use list::{Block, ListOutcome, ListQuery};
pub use model::NomadVersion;
pub use tls::TlsOptions;
pub use token::TokenSource;
