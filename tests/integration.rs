//! One integration binary (ripgrep-style): the harness in `support` compiles
//! once. Every test talks to real sockets on 127.0.0.1 only.

mod support;

mod cli;
mod client_role;
mod datadog;
mod degraded;
mod demo;
mod fuzz;
mod operator;
mod server_cluster;
mod server_role;
mod tls;
