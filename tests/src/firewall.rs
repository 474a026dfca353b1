//! Cutting links between processes with nftables, for the fault tests: every process of a
//! [`crate::ProcessCluster`] started with `own_addresses` has its own loopback address, so a rule
//! that drops packets from one address to another (both ways) partitions exactly those two.
//! Dropped, not rejected: like a real network partition, the peers see silence, not errors.
//!
//! Each `Firewall` owns one nftables table (named after the test process), removed when dropped;
//! tables left by test processes that died without dropping theirs are removed by the next one.
//! It needs root and the `nft` command (Debian's `nftables`, installed by `scripts/test.sh`).

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Firewall {
    table: String,
}

fn nft(args: &[&str]) -> Result<(), String> {
    let output = Command::new("nft")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run nft (install Debian's nftables; run as root): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Deletes the tables named after test processes that no longer run (killed before they could
/// drop their `Firewall`): their rules would still cut links for whoever gets those addresses.
fn remove_tables_of_dead_processes() {
    let Ok(output) = Command::new("nft").args(["list", "tables"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(table) = line.strip_prefix("table inet ") else {
            continue;
        };
        let pid = table
            .strip_prefix("aerie_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = nft(&["delete", "table", "inet", table]);
            }
        }
    }
}

impl Firewall {
    /// A table of its own with one output chain; panics, saying why, when nftables is unusable.
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let table = format!(
            "aerie_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let setup = nft(&["add", "table", "inet", &table]).and_then(|_| {
            nft(&[
                "add",
                "chain",
                "inet",
                &table,
                "out",
                "{ type filter hook output priority 0; policy accept; }",
            ])
        });
        if let Err(e) = setup {
            panic!("the fault tests cut links with nftables, as root: {e}");
        }
        remove_tables_of_dead_processes();
        Firewall { table }
    }

    fn family(ip: IpAddr) -> &'static str {
        match ip {
            IpAddr::V4(_) => "ip",
            IpAddr::V6(_) => "ip6",
        }
    }

    /// Drops every packet between `a` and `b`, both ways.
    pub fn cut(&self, a: IpAddr, b: IpAddr) {
        for (from, to) in [(a, b), (b, a)] {
            let rule = format!(
                "{} saddr {from} {} daddr {to} drop",
                Self::family(from),
                Self::family(to)
            );
            let mut args = vec!["add", "rule", "inet", &self.table, "out"];
            args.extend(rule.split(' '));
            nft(&args).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        nft(&["flush", "chain", "inet", &self.table, "out"]).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Default for Firewall {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = nft(&["delete", "table", "inet", &self.table]);
    }
}
