//! The collector (`--role collector`, and in `--role all`): a client of the cluster that watches it
//! from outside. Every `available_detect_interval_seconds` it probes each partition of the probe
//! table (a set, then a get); every `app_stat_interval_seconds` it gathers what every replica
//! server's primaries served, turns it into per-table rates, judges hot partitions, and exports
//! all of it as metrics and through the collector service (`QueryProbes`, `QueryAppStat`).
//! It follows the meta leader like any client, so a meta failover or a collector restart only
//! leaves a gap in the statistics.

pub mod availability;
pub mod exports;
pub mod gather;
pub mod hot;
pub mod probe;
pub mod probe_book;
pub mod table_stats;

use actix::prelude::*;
use aerie_client::Client;
use aerie_proto::collector::{AppStatReport, ProbeReport};
use probe::{ProbeTarget, RoundOutcome};
use probe_book::{ProbeBook, ProbeEvent};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What the collector is told to do (the `[collector]` section).
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    pub probe_table: String,
    pub probe_partitions: u32,
    pub probe_interval: Duration,
    pub alert_fail_count: u32,
    pub stat_interval: Duration,
    pub hot_threshold: u32,
    pub hot_occurrence: u32,
}

pub struct Collector {
    client: Client,
    options: CollectorOptions,
    started: Instant,
    book: ProbeBook,
    /// Why probes are not counted yet (None once the probe table has answered on every partition).
    waiting: Option<String>,
    probing: bool,
    rounds: u64,
    gathering: bool,
    sampler: table_stats::Sampler,
    hot: hot::HotTracker,
    stats: AppStatReport,
    exported_tables: BTreeSet<String>,
}

impl Collector {
    pub fn new(client: Client, options: CollectorOptions) -> Self {
        exports::register(&options.probe_table);
        Collector {
            book: ProbeBook::new(&options.probe_table, options.alert_fail_count),
            waiting: Some("the first probe round has not finished".into()),
            stats: AppStatReport {
                interval_secs: options.stat_interval.as_secs(),
                ..Default::default()
            },
            client,
            options,
            started: Instant::now(),
            probing: false,
            rounds: 0,
            gathering: false,
            sampler: Default::default(),
            hot: Default::default(),
            exported_tables: BTreeSet::new(),
        }
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn start_probe_round(&mut self, ctx: &mut Context<Self>) {
        if self.probing {
            return;
        }
        self.probing = true;
        self.rounds += 1;
        let (client, round) = (self.client.clone(), self.rounds);
        let target = ProbeTarget {
            table: self.options.probe_table.clone(),
            partitions_to_create: self.options.probe_partitions,
        };
        let run = async move { probe::probe_round(&client, &target, round).await };
        ctx.spawn(run.into_actor(self).map(|outcome, act, _| {
            act.probing = false;
            act.finish_probe_round(outcome);
        }));
    }

    fn finish_probe_round(&mut self, outcome: RoundOutcome) {
        let table = self.options.probe_table.clone();
        let outcomes = match outcome {
            RoundOutcome::Waiting(why) => {
                tracing::info!(table = %table, reason = %why, "collector: probes wait");
                exports::round("probe", "waiting");
                self.waiting = Some(why);
                return;
            }
            RoundOutcome::Probed(outcomes) => outcomes,
        };
        if self.waiting.is_some() {
            // Probes count once the cluster is up: once every partition answered one round.
            let answered = outcomes.iter().filter(|o| o.is_ok()).count();
            if answered < outcomes.len() {
                self.waiting = Some(format!(
                    "waiting for every partition of {table} to answer ({answered} of {} did)",
                    outcomes.len()
                ));
                exports::round("probe", "waiting");
                return;
            }
            tracing::info!(table = %table, partitions = outcomes.len(), "collector: availability probes started");
            self.waiting = None;
        }
        let now = self.now_secs();
        let results: Vec<Result<(), String>> = outcomes
            .iter()
            .map(|o| o.as_ref().map(|_| ()).map_err(Clone::clone))
            .collect();
        for event in self.book.record_round(now, &results) {
            match event {
                ProbeEvent::Alert {
                    pidx,
                    failures_in_a_row,
                    last_error,
                } => tracing::warn!(
                    gpid = %format!("{table}.{pidx}"),
                    failures_in_a_row,
                    last_error = %last_error,
                    "availability probes of a partition keep failing"
                ),
                ProbeEvent::Recovered { pidx, failed_for } => tracing::info!(
                    gpid = %format!("{table}.{pidx}"),
                    failed_for,
                    "availability probes of a partition succeed again"
                ),
            }
        }
        exports::probes(&self.book, &table, &outcomes, now);
        exports::round("probe", "done");
    }

    fn start_gathering(&mut self, ctx: &mut Context<Self>) {
        if self.gathering {
            return;
        }
        self.gathering = true;
        let client = self.client.clone();
        let run = async move { gather::gather(&client).await };
        ctx.spawn(run.into_actor(self).map(|gathered, act, _| {
            act.gathering = false;
            match gathered {
                Ok((tables, reported, silent)) => {
                    if !silent.is_empty() {
                        tracing::debug!(?silent, "collector: replica servers that did not report");
                    }
                    act.finish_gathering(&tables, &reported);
                    exports::round("app_stat", "done");
                }
                Err(e) => {
                    tracing::info!(error = %e, "collector: cannot gather table statistics");
                    exports::round("app_stat", "failed");
                }
            }
        }));
    }

    fn finish_gathering(&mut self, tables: &[aerie_proto::meta::AppState], reported: &table_stats::Reported) {
        let now_ms = aerie_common::clock::wall_ms_now();
        let (mut stats, growth) = self.sampler.sample(tables, reported, now_ms);
        for table in &mut stats {
            let hot = self.hot.observe(
                table.app_id,
                &table.partitions,
                self.options.hot_threshold,
                self.options.hot_occurrence,
            );
            for h in hot.iter().filter(|h| h.rounds == self.options.hot_occurrence) {
                tracing::warn!(
                    gpid = %format!("{}.{}", table.app_id, h.partition_index),
                    table = %table.name,
                    kind = h.kind.name(),
                    qps = h.qps,
                    score = h.score,
                    "hot partition"
                );
            }
            table.hot = hot;
        }
        self.hot.retain(&stats.iter().map(|t| t.app_id).collect::<Vec<_>>());
        exports::tables(&stats, &growth, &mut self.exported_tables);
        self.stats = AppStatReport {
            gathered_at_ms: now_ms,
            interval_secs: self.options.stat_interval.as_secs(),
            tables: stats,
        };
    }

    /// The `server-stat` text: probe state and availability.
    fn server_stat(&self) -> String {
        let report = self.probe_report();
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.3}%", r * 100.0));
        let mut text = format!(
            "collector: probe table {}, {} rounds; availability 1m {} 1h {} 1d {}",
            report.table,
            report.rounds,
            pct(report.availability_1m),
            pct(report.availability_1h),
            pct(report.availability_1d)
        );
        if let Some(why) = &report.waiting {
            text.push_str(&format!("\nprobes wait: {why}"));
        }
        for p in report.partitions.iter().filter(|p| p.failures_in_a_row > 0) {
            text.push_str(&format!(
                "\npartition {}: {} failed in a row; last error {}",
                p.partition_index,
                p.failures_in_a_row,
                p.last_error.as_deref().unwrap_or("-")
            ));
        }
        let tables = self.stats.tables.len();
        let hot: usize = self.stats.tables.iter().map(|t| t.hot.len()).sum();
        text.push_str(&format!("\ntable statistics: {tables} tables, {hot} hot partitions"));
        text
    }

    fn probe_report(&self) -> ProbeReport {
        self.book.report(self.now_secs(), self.waiting.clone())
    }
}

impl Actor for Collector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_probe_round(ctx);
        ctx.run_interval(self.options.probe_interval, |act, ctx| act.start_probe_round(ctx));
        ctx.run_interval(self.options.stat_interval, |act, ctx| act.start_gathering(ctx));
    }
}

#[derive(Message)]
#[rtype(result = "ProbeReport")]
pub struct GetProbeReport;

impl Handler<GetProbeReport> for Collector {
    type Result = MessageResult<GetProbeReport>;

    fn handle(&mut self, _: GetProbeReport, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.probe_report())
    }
}

#[derive(Message)]
#[rtype(result = "AppStatReport")]
pub struct GetAppStat;

impl Handler<GetAppStat> for Collector {
    type Result = MessageResult<GetAppStat>;

    fn handle(&mut self, _: GetAppStat, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

#[derive(Message)]
#[rtype(result = "String")]
pub struct GetServerStat;

impl Handler<GetServerStat> for Collector {
    type Result = String;

    fn handle(&mut self, _: GetServerStat, _: &mut Self::Context) -> String {
        self.server_stat()
    }
}
