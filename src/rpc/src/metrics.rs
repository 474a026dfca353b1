//! Metrics of the RPC layer.

use prometheus::{register_int_counter_vec, IntCounterVec};
use std::sync::LazyLock;

pub static SERVER_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_rpc_server_requests_total",
        "Requests received over TCP, by method.",
        &["method"]
    )
    .expect("metric registers once")
});

pub static CONNECTIONS_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_rpc_connections_closed_total",
        "Inbound connections closed by the server, by reason.",
        &["reason"]
    )
    .expect("metric registers once")
});

pub static CLIENT_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_rpc_client_errors_total",
        "Outbound calls that failed in transport, by kind.",
        &["kind"]
    )
    .expect("metric registers once")
});
