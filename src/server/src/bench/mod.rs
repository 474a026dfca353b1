//! `aerie bench`: a YCSB-style load generator against a running cluster.
//!
//! The load phase inserts `--records` records (hash key `user<N>`, sort key `f0`, a value of
//! `--value-size` bytes); workloads A (50% read / 50% update), B (95/5) and C (read only) then run for
//! `--duration` seconds each with `--threads` requests in flight, choosing keys zipfian (YCSB's
//! default) or uniform. Each phase prints throughput and p50/p99/p999 latency per operation.

mod zipf;

use aerie_client::{Client, ClientOptions, Table};
use aerie_common::{ErrorCode, NodeAddr};
use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zipf::Zipfian;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Load,
    A,
    B,
    C,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    Zipfian,
    Uniform,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Meta servers, comma separated.
    #[arg(long, default_value = "127.0.0.1:34601")]
    pub meta: String,
    /// Table to use; created if missing.
    #[arg(long, default_value = "bench")]
    pub table: String,
    /// Partitions of the table when it has to be created.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Phases to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "load,a,b,c")]
    pub workloads: Vec<Workload>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub threads: usize,
    /// Records inserted by the load phase, and the key space of the workloads.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Bytes per value.
    #[arg(long = "value-size", default_value_t = 100)]
    pub value_size: usize,
    /// Seconds each of workloads A, B and C runs.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    #[arg(long, value_enum, default_value = "zipfian")]
    pub distribution: Distribution,
    /// Timeout of one request, retries included, in milliseconds.
    #[arg(long = "timeout_ms", default_value_t = 5_000)]
    pub timeout_ms: u64,
}

fn key(index: u64) -> Vec<u8> {
    format!("user{index:012}").into_bytes()
}

const SORT_KEY: &[u8] = b"f0";

fn value(size: usize, rng: &mut impl Rng) -> Vec<u8> {
    (0..size).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

/// Latencies of one operation kind, in microseconds.
struct OpStats {
    latency: Histogram<u64>,
    errors: u64,
}

impl OpStats {
    fn new() -> Self {
        OpStats {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            errors: 0,
        }
    }

    fn record(&mut self, started: Instant, ok: bool) {
        let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
        let _ = self.latency.record(micros);
        if !ok {
            self.errors += 1;
        }
    }

    fn merge(&mut self, other: &OpStats) {
        let _ = self.latency.add(&other.latency);
        self.errors += other.errors;
    }
}

#[derive(Default)]
struct PhaseStats {
    ops: Vec<(&'static str, OpStats)>,
}

impl PhaseStats {
    fn op(&mut self, name: &'static str) -> &mut OpStats {
        if let Some(i) = self.ops.iter().position(|(n, _)| *n == name) {
            return &mut self.ops[i].1;
        }
        self.ops.push((name, OpStats::new()));
        &mut self.ops.last_mut().expect("just pushed").1
    }

    fn merge(&mut self, other: PhaseStats) {
        for (name, stats) in other.ops {
            self.op(name).merge(&stats);
        }
    }

    fn print(&self, title: &str, elapsed: Duration) {
        let total: u64 = self.ops.iter().map(|(_, s)| s.latency.len()).sum();
        let errors: u64 = self.ops.iter().map(|(_, s)| s.errors).sum();
        println!(
            "[{title}] {total} ops in {:.1} s: {:.0} ops/s, {errors} errors",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        for (name, stats) in &self.ops {
            let h = &stats.latency;
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "  {name:<7} count={:<9} errors={:<5} p50={:.2}ms p99={:.2}ms p999={:.2}ms max={:.2}ms",
                h.len(),
                stats.errors,
                ms(0.5),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0
            );
        }
    }
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    crate::logging::init("warn");
    if args.threads == 0 || args.records == 0 {
        return Err(anyhow!("--threads and --records must be at least 1"));
    }
    let metas = NodeAddr::parse_list(&args.meta).context("--meta")?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(args.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(bench(args, metas))?;
    Ok(ExitCode::SUCCESS)
}

async fn open_table(args: &BenchArgs, client: &Client) -> Result<Table> {
    match client.table(&args.table).await {
        Ok(table) => Ok(table),
        Err(e) if e.code == ErrorCode::ERR_APP_NOT_EXIST => {
            println!("creating table {} with {} partitions", args.table, args.partitions);
            client
                .create_table(&args.table, args.partitions, 3)
                .await
                .map_err(|e| anyhow!("creating table {}: {e}", args.table))?;
            client.table(&args.table).await.map_err(|e| anyhow!("{e}"))
        }
        Err(e) => Err(anyhow!("opening table {}: {e}", args.table)),
    }
}

async fn bench(args: BenchArgs, metas: Vec<NodeAddr>) -> Result<()> {
    let client = Client::new(
        metas,
        ClientOptions {
            timeout: Duration::from_millis(args.timeout_ms),
            ..Default::default()
        },
    )
    .map_err(|e| anyhow!("{e}"))?;
    let table = open_table(&args, &client).await?;
    println!(
        "bench: table={} records={} value_size={} threads={} distribution={:?}",
        args.table, args.records, args.value_size, args.threads, args.distribution
    );
    let zipf = Arc::new(Zipfian::new(args.records, Zipfian::THETA));
    for workload in &args.workloads {
        let started = Instant::now();
        let (title, stats) = match workload {
            Workload::Load => ("load".to_string(), load(&args, &table).await),
            other => {
                let read_percent = match other {
                    Workload::A => 50,
                    Workload::B => 95,
                    _ => 100,
                };
                let title = format!(
                    "workload {:?}: {read_percent}% read / {}% update, {:?}",
                    other,
                    100 - read_percent,
                    args.distribution
                )
                .to_lowercase();
                (title, mixed(&args, &table, read_percent, zipf.clone()).await)
            }
        };
        stats.print(&title, started.elapsed());
    }
    Ok(())
}

async fn load(args: &BenchArgs, table: &Table) -> PhaseStats {
    let next = Arc::new(AtomicU64::new(0));
    let tasks = (0..args.threads).map(|_| {
        let (table, next, records, size) = (table.clone(), next.clone(), args.records, args.value_size);
        tokio::spawn(async move {
            let mut stats = PhaseStats::default();
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= records {
                    return stats;
                }
                let value = value(size, &mut rng);
                let started = Instant::now();
                let ok = table.set(&key(index), SORT_KEY, &value, 0).await.is_ok();
                stats.op("insert").record(started, ok);
            }
        })
    });
    collect(tasks).await
}

async fn mixed(args: &BenchArgs, table: &Table, read_percent: u32, zipf: Arc<Zipfian>) -> PhaseStats {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let tasks = (0..args.threads).map(|_| {
        let (table, zipf, args) = (table.clone(), zipf.clone(), args.clone());
        tokio::spawn(async move {
            let mut stats = PhaseStats::default();
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            while Instant::now() < deadline {
                let index = match args.distribution {
                    Distribution::Zipfian => zipf.next_item(&mut rng),
                    Distribution::Uniform => rng.random_range(0..args.records),
                };
                let started = Instant::now();
                if rng.random_range(0..100) < read_percent {
                    let ok = table.get(&key(index), SORT_KEY).await.is_ok();
                    stats.op("read").record(started, ok);
                } else {
                    let value = value(args.value_size, &mut rng);
                    let ok = table.set(&key(index), SORT_KEY, &value, 0).await.is_ok();
                    stats.op("update").record(started, ok);
                }
            }
            stats
        })
    });
    collect(tasks).await
}

async fn collect(tasks: impl Iterator<Item = tokio::task::JoinHandle<PhaseStats>>) -> PhaseStats {
    let mut total = PhaseStats::default();
    for stats in futures::future::join_all(tasks).await.into_iter().flatten() {
        total.merge(stats);
    }
    total
}
