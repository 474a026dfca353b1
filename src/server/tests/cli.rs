//! The `aerie` binary's start-up checks, run as a user would: bad configuration fails at once with a
//! message naming the key, a data dir cannot be shared, and SIGTERM stops a running cluster cleanly.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn aerie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aerie"))
}

fn run(args: &[&str]) -> Output {
    aerie().args(args).output().expect("aerie runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn free_port() -> u16 {
    aerie_common::ports::free_loopback_port()
}

/// A base port whose next `n` ports are free right now.
fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base > u16::MAX - n {
            continue;
        }
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

#[test]
fn no_role_asks_for_one() {
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--role"), "{}", stderr(&output));
}

#[test]
fn unknown_key_in_a_file_is_named() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    writeln!(file, "[replication]\nfd_lease_secs = 8").unwrap();
    let output = run(&["--role", "replica", "-c", file.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("fd_lease_secs") && err.contains("replication"), "{err}");
}

#[test]
fn bad_value_is_named() {
    let output = run(&["--role", "meta", "--set", "replication.fd_lease_seconds=soon"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("replication.fd_lease_seconds"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_combination_is_named() {
    let output = run(&["--role", "replica", "--set", "replication.fd_grace_seconds=8"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("fd_grace_seconds") && err.contains("fd_lease_seconds"),
        "{err}"
    );
}

#[test]
fn shell_reports_an_unreachable_meta() {
    let port = free_port();
    let output = run(&[
        "shell",
        "--meta",
        &format!("127.0.0.1:{port}"),
        "--timeout_ms",
        "500",
        "-e",
        "nodes",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no meta server answered"),
        "{}",
        stderr(&output)
    );
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

fn start_all(dir: &std::path::Path, meta: u16, replicas: u16, collector: u16, log: &std::path::Path) -> Child {
    aerie()
        .args(["--role", "all", "--data-dir", dir.to_str().unwrap()])
        .args(["--set", &format!("meta_server.address=127.0.0.1:{meta}")])
        .args(["--set", &format!("replication.address=127.0.0.1:{replicas}")])
        .args(["--set", &format!("collector.address=127.0.0.1:{collector}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_stops_a_dev_cluster_cleanly_and_a_data_dir_is_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, collector, replicas) = (free_port(), free_port(), free_ports(3));
    let log = dir.path().join("first.log");
    let mut child = start_all(&dir.path().join("data"), meta, replicas, collector, &log);
    wait_for_port(meta, Duration::from_secs(20));
    wait_for_port(replicas + 2, Duration::from_secs(20));

    // A second process on the same data dir is refused, naming the lock.
    let (meta2, collector2, replicas2) = (free_port(), free_port(), free_ports(3));
    let second_log = dir.path().join("second.log");
    let mut second = start_all(&dir.path().join("data"), meta2, replicas2, collector2, &second_log);
    let status = wait_for_exit(&mut second, Duration::from_secs(20)).expect("the second process exits");
    assert!(!status.success());
    let err = std::fs::read_to_string(&second_log).unwrap();
    assert!(err.contains("in use by another aerie process"), "{err}");

    // SIGTERM: every role stops and the process exits 0.
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for_exit(&mut child, Duration::from_secs(30)).expect("aerie stops after SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit {status:?}\n{text}");
    assert!(
        text.contains("SIGTERM received") && text.contains("aerie stopped"),
        "{text}"
    );
}

#[test]
fn an_address_in_use_is_named_and_nothing_panics() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let address = format!("127.0.0.1:{}", taken.local_addr().unwrap().port());
    let metas = format!("meta_server.server_list=127.0.0.1:{}", free_port());
    let data_dirs = format!("replication.data_dirs=default:{}", dir.path().join("r").display());
    let replica_address = format!("replication.address={address}");
    let collector_address = format!("collector.address={address}");
    let cases: [(&str, Vec<&str>, &str); 2] = [
        (
            "replica",
            vec![&metas, &data_dirs, &replica_address],
            "(replication.address)",
        ),
        ("collector", vec![&metas, &collector_address], "(collector.address)"),
    ];
    for (role, settings, key) in cases {
        let mut args = vec!["--role", role];
        for setting in settings {
            args.extend(["--set", setting]);
        }
        let output = run(&args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{role}: {err}");
        assert!(
            err.contains(&format!("cannot listen on {address} {key}")) && err.contains("in use"),
            "{role}: {err}"
        );
        assert!(!err.contains("panicked"), "{role}: {err}");
    }
}
