//! Readiness for systemd's `Type=notify` units, by the sd_notify protocol itself (one datagram to
//! the Unix socket named by `$NOTIFY_SOCKET`; a name starting with `@` is in the abstract
//! namespace): `READY=1` once every role in the process serves (what `/health` says: a replica
//! server holds its lease, a meta leads with its state loaded or follows a leader, the collector is
//! up), so that `systemctl start|restart` returns when the server serves; `STOPPING=1` when a clean
//! stop begins. Without `$NOTIFY_SOCKET` (not under systemd) nothing is sent.

use aerie_rpc::HealthCheck;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use tracing::{info, warn};

/// How often readiness is checked until the process is ready.
const POLL: Duration = Duration::from_millis(100);

/// Sends `state` (newline-separated `KEY=VALUE` lines) to the service manager. `Ok(false)` when
/// there is none.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let message = format!("{state}\nMAINPID={}", std::process::id());
    let path = path.to_string_lossy().into_owned();
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(message.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(message.as_bytes(), &path)?;
        }
    }
    Ok(true)
}

/// Waits until every check passes, then sends `READY=1` with the checks' words as the status.
pub async fn announce_when_ready(checks: Vec<HealthCheck>) {
    loop {
        let results: Vec<(bool, String)> = checks.iter().map(|check| check()).collect();
        if results.iter().all(|(ok, _)| *ok) {
            let status: Vec<String> = results.into_iter().map(|(_, words)| words).collect();
            let state = format!("READY=1\nSTATUS={}", status.join("; "));
            match notify(&state) {
                Ok(true) => info!("told the service manager: ready"),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot tell the service manager that the server is ready"),
            }
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Tells the service manager a clean stop began.
pub fn announce_stopping() {
    if let Err(e) = notify("STOPPING=1") {
        warn!(error = %e, "cannot tell the service manager that the server is stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_message_reaches_the_socket_named_by_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        // SAFETY: this test alone reads or writes NOTIFY_SOCKET in this test binary.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1").unwrap());
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(text, format!("READY=1\nMAINPID={}", std::process::id()));
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!notify("READY=1").unwrap(), "nothing to tell without a service manager");
    }
}
