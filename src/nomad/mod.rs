//! POLL: everything that knows HTTP or Nomad's JSON. Callers get typed
//! models (`model`) or a typed `NomadError`; no gauge or DogStatsD type is
//! known here.

pub mod api;
pub mod error;
pub mod events;
pub mod features;
pub mod model;
pub mod skim;
pub mod stream;

pub use api::{Block, ListOutcome, ListQuery, NomadApi, NomadApiOptions, TlsOptions, TokenSource};
pub use error::NomadError;
pub use features::Features;
pub use model::NomadVersion;
