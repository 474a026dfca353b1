//! systemd's `Type=notify`: a meta and a replica server started with `$NOTIFY_SOCKET` (as systemd
//! starts them) say `READY=1` only once they serve (the replica server: once the meta has
//! acknowledged its beacon, so the meta lists it alive at that moment), and `STOPPING=1` when
//! SIGTERM starts a clean stop.

use aerie_proto::meta::NodeStatus;
use aerie_tests::{ProcessCluster, ProcessClusterOptions};
use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Adds the messages received to `seen`, per sending pid (`MAINPID=`), until `done` says enough
/// or the bound passes.
fn receive_until(
    socket: &UnixDatagram,
    seen: &mut BTreeMap<u32, Vec<String>>,
    what: &str,
    done: impl Fn(&BTreeMap<u32, Vec<String>>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; received {seen:?}"
        );
        socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let pid = text
            .lines()
            .find_map(|l| l.strip_prefix("MAINPID="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no MAINPID in {text:?}"));
        seen.entry(pid).or_default().push(text);
    }
}

fn said(seen: &BTreeMap<u32, Vec<String>>, pid: u32, line: &str) -> bool {
    seen.get(&pid)
        .is_some_and(|m| m.iter().any(|t| t.lines().any(|l| l == line)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_tell_systemd_they_are_ready_once_they_serve_and_when_they_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 1,
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..Default::default()
    });
    let meta_pid = cluster.metas[0].pid().unwrap();
    let replica_pid = cluster.replicas[0].pid().unwrap();
    let mut seen = BTreeMap::new();
    receive_until(&socket, &mut seen, "READY=1 from the replica server", |seen| {
        said(seen, replica_pid, "READY=1")
    });
    // The replica server's readiness means the meta acknowledged its beacon: it is alive there.
    let nodes = cluster.client(Duration::from_secs(10)).list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].status, NodeStatus::Alive);
    let status = seen[&replica_pid].iter().find(|t| t.contains("READY=1")).unwrap();
    assert!(status.contains("STATUS=replica: beacon acknowledged"), "{status}");
    receive_until(&socket, &mut seen, "READY=1 from the meta server", |s| {
        said(s, meta_pid, "READY=1")
    });
    assert!(
        seen[&meta_pid].iter().any(|t| t.contains("STATUS=meta: serving")),
        "{seen:?}"
    );

    cluster.replicas[0]
        .terminate(Duration::from_secs(60))
        .expect("a clean stop");
    receive_until(&socket, &mut seen, "STOPPING=1 from the replica server", |s| {
        said(s, replica_pid, "STOPPING=1")
    });
}
