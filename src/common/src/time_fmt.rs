//! Display of wall-clock times in the Pegasus shell's style, `2026-11-21_12:00:00` (local time).

use chrono::{Local, TimeZone};

/// Formats Unix seconds as `YYYY-mm-dd_HH:MM:SS` in local time.
pub fn format_unix_secs(secs: u64) -> String {
    match Local.timestamp_opt(secs as i64, 0).single() {
        Some(time) => time.format("%Y-%m-%d_%H:%M:%S").to_string(),
        None => secs.to_string(),
    }
}
