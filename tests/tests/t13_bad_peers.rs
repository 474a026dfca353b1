//! A real replica server facing misbehaving connections: each bad connection is closed with a logged
//! reason, and the server keeps serving everyone else.

use aerie_tests::{ProcessCluster, ProcessClusterOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Whether the peer closed the connection: end of stream, or a reset (a close with unread data).
fn is_closed(stream: &mut TcpStream) -> bool {
    match stream.read(&mut [0u8; 16]) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Sends `bytes` after the handshake and says whether the server then closed the connection.
fn closed_after(addr: std::net::SocketAddr, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&aerie_rpc::frame::preamble()).unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).unwrap();
    stream.write_all(bytes).unwrap();
    is_closed(&mut stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_one_connection_and_service_goes_on() {
    let cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("p", 2, 3).await.unwrap();
    let table = client.table("p").await.unwrap();
    table.set(b"before", b"s", b"v", 0).await.unwrap();

    let target = cluster.replica_addrs[0].socket_addr();
    let (oversized, garbage, wrong_magic) = tokio::task::spawn_blocking(move || {
        let oversized = closed_after(target, &u32::MAX.to_be_bytes());
        let mut frame = 8u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0xee; 8]);
        let garbage = closed_after(target, &frame);
        let mut stream = TcpStream::connect(target).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"SSH-2.0-x\r\n").unwrap();
        let wrong_magic = is_closed(&mut stream);
        (oversized, garbage, wrong_magic)
    })
    .await
    .unwrap();
    assert!(
        oversized && garbage && wrong_magic,
        "{oversized} {garbage} {wrong_magic}"
    );

    // Service goes on, for new and existing clients.
    for i in 0..20 {
        table.set(format!("after{i}").as_bytes(), b"s", b"v", 0).await.unwrap();
    }
    assert_eq!(table.get(b"before", b"s").await.unwrap(), Some(b"v".to_vec()));
    let log = std::fs::read_to_string(cluster.data_dir().join("replica0.log")).unwrap();
    assert!(log.contains("closing connection") && log.contains("oversized"), "{log}");
    assert!(log.contains("malformed"), "{log}");
}
