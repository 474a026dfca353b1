//! The systemd units in `scripts/systemd/`: `systemd-analyze verify` has nothing to say about any of
//! them (it exits 0 even for an unknown key, so any output fails), and `systemd-analyze security
//! --offline=yes` rates each at most 2.5 (Debian's own prometheus.service rates 4.0). The units name
//! /usr/local/bin/aerie; the copies checked here name the binary under test, which must exist.

use aerie_tests::{aerie_bin, checkout_file};
use std::path::Path;
use std::process::Command;

const UNITS: [(&str, &str); 3] = [
    ("aerie-meta.service", "aerie-meta.service"),
    ("aerie-replica@.service", "aerie-replica@34801.service"),
    ("aerie-collector.service", "aerie-collector.service"),
];
const MOST_EXPOSURE: f64 = 2.5;

fn analyze(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The overall exposure `systemd-analyze security` prints last: "→ Overall exposure level for X: 1.4 OK".
fn exposure(report: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    let after = line.rsplit_once(": ").expect("a colon before the figure").1;
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line:?}"))
}

#[test]
fn every_unit_verifies_cleanly_and_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let bin = aerie_bin();
    for (template, instance) in UNITS {
        let text = std::fs::read_to_string(checkout_file(&format!("scripts/systemd/{template}"))).unwrap();
        assert!(
            text.contains("/usr/local/bin/aerie"),
            "{template} runs /usr/local/bin/aerie"
        );
        // The server says when it serves (t52 checks it does); restart returns then.
        assert!(
            text.contains("Type=notify\nNotifyAccess=main"),
            "{template} is Type=notify"
        );
        let text = text.replace("/usr/local/bin/aerie", &bin.display().to_string());
        std::fs::write(dir.path().join(instance), &text).unwrap();
        if template != instance {
            std::fs::write(dir.path().join(template), &text).unwrap();
        }
    }
    for (_, unit) in UNITS {
        let (ok, said) = analyze(dir.path(), &["verify", unit]);
        assert!(ok && said.trim().is_empty(), "systemd-analyze verify {unit}:\n{said}");
        let (ok, report) = analyze(dir.path(), &["security", "--offline=yes", unit]);
        assert!(ok, "systemd-analyze security {unit}:\n{report}");
        let level = exposure(&report);
        assert!(
            level <= MOST_EXPOSURE,
            "{unit} rates {level} (at most {MOST_EXPOSURE}):\n{report}"
        );
    }
}
