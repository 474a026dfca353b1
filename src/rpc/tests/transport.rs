//! The RPC layer over real TCP on loopback: round trips, local dispatch, deadlines, and a server that
//! survives bad peers.

use aerie_common::NodeAddr;
use aerie_rpc::{Endpoint, HealthCheck, Network, NetworkOptions, RemoteFailure, RpcError};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Slow {
    millis: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Unserved {}

/// Counts how often it is serialized, to prove local calls skip the codec.
#[derive(Debug, Deserialize)]
struct Counted {
    value: u32,
}

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

impl Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        self.value.serialize(serializer)
    }
}

aerie_proto::rpc! { "test";
    Echo => String,
    Slow => (),
    Unserved => (),
    Counted => u32,
}

fn healthy() -> HealthCheck {
    Arc::new(|| (true, "ok".to_string()))
}

fn any_port() -> NodeAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn network() -> Network {
    Network::new(NetworkOptions {
        max_frame_bytes: 64 * 1024,
        ..Default::default()
    })
    .unwrap()
}

fn echo_endpoint() -> Endpoint {
    let mut endpoint = Endpoint::new(any_port());
    endpoint
        .handle::<Echo, _, _>(|req| async move { format!("echo: {}", req.text) })
        .handle::<Slow, _, _>(|req| async move { tokio::time::sleep(Duration::from_millis(req.millis)).await })
        .handle::<Counted, _, _>(|req| async move { req.value + 1 });
    endpoint
}

#[tokio::test]
async fn call_round_trips_over_tcp() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let client = network();
    let reply = client
        .call(server.addr(), Echo { text: "hi".into() }, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, "echo: hi");
    // Many calls in flight on one connection all find their own answer.
    let calls = (0..200).map(|i| {
        let client = client.clone();
        let to = server.addr();
        async move {
            client
                .call(to, Echo { text: i.to_string() }, Duration::from_secs(5))
                .await
        }
    });
    let replies = futures::future::join_all(calls).await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), format!("echo: {i}"));
    }
}

#[tokio::test]
async fn local_calls_do_not_serialize() {
    let net = network();
    let server = net.serve(echo_endpoint(), healthy()).unwrap();
    let before = SERIALIZED.load(Ordering::SeqCst);
    let reply = net
        .call(server.addr(), Counted { value: 41 }, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, 42);
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), before, "a local call was serialized");
    // The same request from another process's network goes through the codec.
    let remote = network();
    assert_eq!(
        remote
            .call(server.addr(), Counted { value: 1 }, Duration::from_secs(5))
            .await
            .unwrap(),
        2
    );
    assert!(SERIALIZED.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn deadline_bounds_a_slow_call() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let client = network();
    let err = client
        .call(server.addr(), Slow { millis: 5_000 }, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn calls_that_give_up_leave_the_connection_clean() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let to = server.addr();
    let client = network();
    // The first call opens the connection; the later ones run over it from this runtime.
    assert_eq!(
        client
            .call(to, Echo { text: "a".into() }, Duration::from_secs(5))
            .await
            .unwrap(),
        "echo: a"
    );
    // A caller that drops its call before the answer (an actor stopping, a select) leaves nothing.
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        client.call(to, Slow { millis: 5_000 }, Duration::from_secs(30)),
    )
    .await;
    assert!(dropped.is_err(), "the slow call answered early");
    assert_eq!(client.waiting_calls(to), 0, "a call that gave up is still waiting");
    assert_eq!(
        client
            .call(to, Echo { text: "b".into() }, Duration::from_secs(5))
            .await
            .unwrap(),
        "echo: b"
    );
    assert_eq!(client.waiting_calls(to), 0);
}

#[tokio::test]
async fn unknown_method_is_an_answer() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let client = network();
    let err = client
        .call(server.addr(), Unserved {}, Duration::from_secs(5))
        .await
        .unwrap_err();
    match err {
        RpcError::Remote {
            failure: RemoteFailure::UnknownMethod(method),
            ..
        } => assert_eq!(method, "test.Unserved"),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn connection_refused_is_reported() {
    let client = network();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client
        .call(NodeAddr(closed_port), Echo { text: "x".into() }, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Connect { .. }), "{err}");
}

/// Opens a raw connection, completes the handshake, sends `bytes`, and reports whether the server closed it.
fn server_closes_after(addr: NodeAddr, bytes: &[u8]) -> bool {
    let mut stream = std::net::TcpStream::connect(addr.socket_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&aerie_rpc::frame::preamble()).unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).unwrap();
    stream.write_all(bytes).unwrap();
    let mut rest = [0u8; 16];
    matches!(stream.read(&mut rest), Ok(0))
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let client = network();
    // A healthy connection exists before the bad ones arrive.
    client
        .call(server.addr(), Echo { text: "a".into() }, Duration::from_secs(5))
        .await
        .unwrap();
    let addr = server.addr();
    let (oversized, malformed) = tokio::task::spawn_blocking(move || {
        let oversized = server_closes_after(addr, &u32::MAX.to_be_bytes());
        let mut garbage = 6u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        (oversized, server_closes_after(addr, &garbage))
    })
    .await
    .unwrap();
    assert!(oversized, "an oversized frame must close the connection");
    assert!(malformed, "a malformed frame must close the connection");
    let reply = client
        .call(server.addr(), Echo { text: "b".into() }, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, "echo: b");
}

#[tokio::test]
async fn oversized_request_is_refused_by_the_caller() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let client = network();
    let err = client
        .call(
            server.addr(),
            Echo {
                text: "x".repeat(100_000),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Codec(_)), "{err}");
}

#[tokio::test]
async fn wrong_magic_and_wrong_version_are_turned_away() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let addr = server.addr();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr.socket_addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"NOTAERIE").unwrap();
        let mut buf = [0u8; 8];
        assert!(matches!(stream.read(&mut buf), Ok(0)), "bad magic must be closed");

        let mut stream = std::net::TcpStream::connect(addr.socket_addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"AERI\x00\x63\x00\x00").unwrap();
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..4], b"AERI", "the server states its own version");
        assert!(
            matches!(stream.read(&mut buf), Ok(0)),
            "a version mismatch must be closed"
        );
    })
    .await
    .unwrap();
}

fn http_get(addr: NodeAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr.socket_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[tokio::test]
async fn same_port_serves_metrics_and_health() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    network()
        .call(server.addr(), Echo { text: "m".into() }, Duration::from_secs(5))
        .await
        .unwrap();
    let addr = server.addr();
    let (metrics, health, missing) = tokio::task::spawn_blocking(move || {
        (
            http_get(addr, "/metrics"),
            http_get(addr, "/health"),
            http_get(addr, "/nope"),
        )
    })
    .await
    .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("aerie_rpc_server_requests_total{method=\"test.Echo\"}"),
        "{metrics}"
    );
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[tokio::test]
async fn stopped_server_closes_its_port() {
    let server_net = network();
    let server = server_net.serve(echo_endpoint(), healthy()).unwrap();
    let addr = server.addr();
    let client = network();
    client
        .call(addr, Echo { text: "a".into() }, Duration::from_secs(5))
        .await
        .unwrap();
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = client
        .call(addr, Echo { text: "b".into() }, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Connect { .. } | RpcError::ConnectionLost { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn fault_filter_drops_calls() {
    let net = network();
    let server = net.serve(echo_endpoint(), healthy()).unwrap();
    net.faults().block(server.addr());
    let err = net
        .call(server.addr(), Echo { text: "x".into() }, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Blocked { .. }));
    net.faults().heal(server.addr());
    assert!(net
        .call(server.addr(), Echo { text: "x".into() }, Duration::from_secs(1))
        .await
        .is_ok());
}
