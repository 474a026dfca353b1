//! `kvbench`: one closed-loop load generator for Aerie and for etcd, so that both stores meet exactly
//! the same load in `scripts/bench_vs_etcd.sh`.
//!
//! `--inflight` tasks each issue one request at a time for `--seconds`, on keys drawn uniformly from
//! `--records` keys, with values of `--value-size` bytes; `--mix` is `write`, `read` or `mixed`
//! (50/50). `load` writes every key once first, so that reads find values. Against Aerie a key is
//! the hash key with an empty sort key (one partition lookup, as etcd's flat key space); against
//! etcd reads are serializable (served by the member asked, like Aerie's primary reads without a
//! quorum round). The result is one JSON line on stdout (ops/s, p50/p99/p999 in ms, errors).

mod store;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Aerie,
    Etcd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mix {
    Load,
    Write,
    Read,
    Mixed,
}

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// Aerie: meta servers; etcd: client URLs (comma separated).
    #[arg(long)]
    endpoints: String,
    #[arg(long, value_enum)]
    mix: Mix,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    #[arg(long = "value-size", default_value_t = 100)]
    value_size: usize,
    /// Aerie's table (created with `--partitions` if missing).
    #[arg(long, default_value = "kvbench")]
    table: String,
    #[arg(long, default_value_t = 8)]
    partitions: u32,
}

fn key(index: u64) -> Vec<u8> {
    format!("key{index:010}").into_bytes()
}

fn value(size: usize, rng: &mut impl Rng) -> Vec<u8> {
    (0..size).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

struct Tally {
    latency: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            errors: 0,
            first_error: None,
        }
    }

    fn record(&mut self, started: Instant, outcome: Result<()>) {
        let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
        match outcome {
            Ok(()) => {
                let _ = self.latency.record(micros);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency.add(&other.latency);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn run_load(store: Arc<dyn Store>, args: &Args) -> Tally {
    let next = Arc::new(AtomicU64::new(0));
    let tasks = (0..args.inflight).map(|_| {
        let (store, next, records, size) = (store.clone(), next.clone(), args.records, args.value_size);
        tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= records {
                    return tally;
                }
                let value = value(size, &mut rng);
                let started = Instant::now();
                let outcome = store.put(key(index), value).await;
                tally.record(started, outcome);
            }
        })
    });
    collect(tasks).await
}

async fn run_timed(store: Arc<dyn Store>, args: &Args) -> Tally {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let read_percent = match args.mix {
        Mix::Read => 100,
        Mix::Mixed => 50,
        _ => 0,
    };
    let tasks = (0..args.inflight).map(|_| {
        let (store, args) = (store.clone(), args.clone());
        tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            while Instant::now() < deadline {
                let key = key(rng.random_range(0..args.records));
                let started = Instant::now();
                let outcome = if rng.random_range(0..100) < read_percent {
                    store.get(key).await
                } else {
                    let value = value(args.value_size, &mut rng);
                    store.put(key, value).await
                };
                tally.record(started, outcome);
            }
            tally
        })
    });
    collect(tasks).await
}

async fn collect(tasks: impl Iterator<Item = tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::new();
    for tally in futures::future::join_all(tasks).await.into_iter().flatten() {
        total.merge(tally);
    }
    total
}

async fn bench(args: Args) -> Result<()> {
    let store: Arc<dyn Store> = match args.target {
        Target::Aerie => Arc::new(store::AerieStore::open(&args.endpoints, &args.table, args.partitions).await?),
        Target::Etcd => Arc::new(store::EtcdStore::connect(&args.endpoints).await?),
    };
    let started = Instant::now();
    let tally = match args.mix {
        Mix::Load => run_load(store, &args).await,
        _ => run_timed(store, &args).await,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let h = &tally.latency;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let line = serde_json::json!({
        "target": format!("{:?}", args.target).to_lowercase(),
        "mix": format!("{:?}", args.mix).to_lowercase(),
        "inflight": args.inflight,
        "ops": h.len(),
        "seconds": elapsed,
        "ops_per_sec": h.len() as f64 / elapsed,
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "errors": tally.errors,
        "first_error": tally.first_error,
    });
    println!("{line}");
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.inflight == 0 || args.records == 0 {
        bail!("--inflight and --records must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}
