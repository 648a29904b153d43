//! `nomad-metrics demo`: a simulated Nomad cluster on a loopback port
//! (`server`), its state and how it changes (`sim`), rendered as Nomad's
//! JSON (`json`).

mod json;
mod server;
mod sim;

pub use server::Simulator;
pub use sim::NOMAD_VERSION;
