//! Loopback ports for tests that start servers. `bind(0)` hands out ports from the kernel's
//! ephemeral range, which outgoing connections (clients, ZooKeeper, peers) also draw from, so a
//! port picked that way can be taken by a connection before the server listens on it. These ports
//! come from below that range (Linux starts it at 32768), each at most once per process, and are
//! checked to be free when handed out.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A loopback port nobody listens on now, not handed out before by this process, and outside the
/// ephemeral range.
pub fn free_loopback_port() -> u16 {
    free_port_on(std::net::Ipv4Addr::LOCALHOST.into())
}

/// Like [`free_loopback_port`], free on `ip` (any address of 127.0.0.0/8 is a loopback address).
pub fn free_port_on(ip: std::net::IpAddr) -> u16 {
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        // Start at a different place in each process, so that processes rarely walk the same ports.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let start = (std::process::id().wrapping_mul(7919) ^ nanos) % COUNT;
        let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..50).map(|_| free_loopback_port()).collect();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)), "{ports:?}");
    }
}
