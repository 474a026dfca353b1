//! The collector's Prometheus metrics: probe outcomes, latency and availability of the probe
//! table, and the table statistics with a `table` label (never a partition label: a table adds a
//! fixed 16 series, whatever its partition count). Series of dropped tables are removed.

use super::availability::{DAY, HOUR, MINUTE};
use super::probe_book::ProbeBook;
use super::table_stats::Growth;
use aerie_proto::collector::{HotKind, TableStat, REQUEST_KINDS};
use prometheus::{
    exponential_buckets, register_gauge_vec, register_histogram_vec, register_int_counter_vec, register_int_gauge_vec,
    GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

static PROBES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_collector_probes_total",
        "Availability probes (a set and a get on one partition of the probe table), by outcome.",
        &["table", "outcome"]
    )
    .expect("metric registers once")
});

static PROBE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "aerie_collector_probe_duration_seconds",
        "Time a successful probe took (its set and its get).",
        &["table"],
        exponential_buckets(0.000_25, 2.0, 16).expect("valid buckets")
    )
    .expect("metric registers once")
});

static AVAILABILITY: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "aerie_collector_availability_ratio",
        "Successful / total probes over the last minute, hour or day (absent before the first probe).",
        &["table", "window"]
    )
    .expect("metric registers once")
});

static FAILING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_collector_failing_partitions",
        "Partitions of the probe table whose last probe failed (`in_a_row`: failing at least available_detect_alert_fail_count probes in a row).",
        &["table", "streak"]
    )
    .expect("metric registers once")
});

static ROUNDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_collector_rounds_total",
        "Rounds of the collector's work, by kind (probe, app_stat) and outcome (done, waiting, failed).",
        &["kind", "outcome"]
    )
    .expect("metric registers once")
});

static TABLE_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_table_requests_total",
        "Client requests the table's primaries served, by kind, as the collector sampled them.",
        &["table", "op"]
    )
    .expect("metric registers once")
});

static TABLE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_table_bytes_total",
        "Bytes of keys and values the table's primaries read and wrote for clients.",
        &["table", "direction"]
    )
    .expect("metric registers once")
});

static TABLE_STORAGE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_table_storage_bytes",
        "Bytes of data (SST files and memtables) of the table's primaries.",
        &["table"]
    )
    .expect("metric registers once")
});

static TABLE_FILES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_table_sst_files",
        "SST files of the table's primaries.",
        &["table"]
    )
    .expect("metric registers once")
});

static TABLE_UNREACHED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_table_unreached_partitions",
        "Partitions whose primary is unknown or did not report in the last gathering.",
        &["table"]
    )
    .expect("metric registers once")
});

static TABLE_HOT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_table_hot_partitions",
        "Partitions reported hot (read or write QPS far above the table's mean for several rounds).",
        &["table", "kind"]
    )
    .expect("metric registers once")
});

/// Makes every collector series exist from the start (a counter nobody touched has no series, and
/// an alert on its rate would never see it begin).
pub fn register(probe_table: &str) {
    for outcome in ["ok", "failed"] {
        PROBES.with_label_values(&[probe_table, outcome]);
    }
    PROBE_SECONDS.with_label_values(&[probe_table]);
    for streak in ["last", "in_a_row"] {
        FAILING.with_label_values(&[probe_table, streak]).set(0);
    }
    for kind in ["probe", "app_stat"] {
        for outcome in ["done", "waiting", "failed"] {
            ROUNDS.with_label_values(&[kind, outcome]);
        }
    }
}

pub fn round(kind: &str, outcome: &str) {
    ROUNDS.with_label_values(&[kind, outcome]).inc();
}

/// Exports one probe round.
pub fn probes(book: &ProbeBook, table: &str, outcomes: &[Result<Duration, String>], now_secs: u64) {
    for outcome in outcomes {
        match outcome {
            Ok(took) => {
                PROBES.with_label_values(&[table, "ok"]).inc();
                PROBE_SECONDS.with_label_values(&[table]).observe(took.as_secs_f64());
            }
            Err(_) => PROBES.with_label_values(&[table, "failed"]).inc(),
        }
    }
    for (window, secs) in [("1m", MINUTE), ("1h", HOUR), ("1d", DAY)] {
        if let Some(ratio) = book.availability(now_secs, secs) {
            AVAILABILITY.with_label_values(&[table, window]).set(ratio);
        }
    }
    let (failing, alerting) = book.failing();
    FAILING.with_label_values(&[table, "last"]).set(failing as i64);
    FAILING.with_label_values(&[table, "in_a_row"]).set(alerting as i64);
}

/// Exports one gathering of table statistics; `exported` holds the tables exported before.
pub fn tables(stats: &[TableStat], growth: &BTreeMap<String, Growth>, exported: &mut BTreeSet<String>) {
    let now: BTreeSet<String> = stats.iter().map(|t| t.name.clone()).collect();
    for gone in exported.difference(&now) {
        remove_table(gone);
    }
    for table in stats {
        let name = table.name.as_str();
        let grown = growth.get(name).cloned().unwrap_or_default();
        for ((_, kind), n) in REQUEST_KINDS.iter().zip(grown.counts) {
            TABLE_REQUESTS.with_label_values(&[name, kind]).inc_by(n);
        }
        TABLE_BYTES.with_label_values(&[name, "read"]).inc_by(grown.read_bytes);
        TABLE_BYTES
            .with_label_values(&[name, "written"])
            .inc_by(grown.write_bytes);
        let storage: u64 = table.partitions.iter().map(|p| p.storage_bytes).sum();
        let files: u64 = table.partitions.iter().map(|p| p.file_count).sum();
        TABLE_STORAGE.with_label_values(&[name]).set(storage as i64);
        TABLE_FILES.with_label_values(&[name]).set(files as i64);
        let unreached = table.partitions.iter().filter(|p| p.primary.is_none()).count();
        TABLE_UNREACHED.with_label_values(&[name]).set(unreached as i64);
        for kind in [HotKind::Read, HotKind::Write] {
            let hot = table.hot.iter().filter(|h| h.kind == kind).count();
            TABLE_HOT.with_label_values(&[name, kind.name()]).set(hot as i64);
        }
    }
    *exported = now;
}

fn remove_table(name: &str) {
    for (_, kind) in REQUEST_KINDS {
        let _ = TABLE_REQUESTS.remove_label_values(&[name, kind]);
    }
    for direction in ["read", "written"] {
        let _ = TABLE_BYTES.remove_label_values(&[name, direction]);
    }
    let _ = TABLE_STORAGE.remove_label_values(&[name]);
    let _ = TABLE_FILES.remove_label_values(&[name]);
    let _ = TABLE_UNREACHED.remove_label_values(&[name]);
    for kind in [HotKind::Read, HotKind::Write] {
        let _ = TABLE_HOT.remove_label_values(&[name, kind.name()]);
    }
}
