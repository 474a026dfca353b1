//! Aerie's RPC layer: typed requests ([`aerie_proto::Rpc`]) carried as length-prefixed bincode frames
//! over TCP, or handed straight to a handler when the callee lives in the same process.
//!
//! ```text
//!  caller ── Network::call::<M>(to, req, timeout) ──┬─ `to` served in this process? ─ typed handler (no serialization)
//!                                                   └─ else: pooled TCP connection ─ frame ─► Server ─ byte handler ─ typed handler
//! ```
//!
//! A connection opens with an 8-byte preamble (magic `AERI` and the protocol version) that the server
//! answers in kind; then both sides exchange frames: a 4-byte big-endian length and a bincode body no
//! larger than the configured maximum. Requests carry an id and a deadline; responses carry the id.
//! A malformed or oversized frame closes that one connection (logged with the reason); the server
//! keeps serving everyone else. The same listening port answers plain HTTP `GET /metrics` and
//! `GET /health`, so every role exposes its metrics without a second port.
//!
//! Socket I/O runs on the network's own small runtime, so a busy actor thread never delays frames.

mod actor;
mod client;
mod endpoint;
mod error;
mod faults;
pub mod frame;
mod http;
mod metrics;
mod network;
mod server;

pub use actor::Inbound;
pub use endpoint::Endpoint;
pub use error::{RemoteFailure, RpcError};
pub use faults::FaultFilter;
pub use http::HealthCheck;
pub use network::{Network, NetworkOptions, ServerHandle};
