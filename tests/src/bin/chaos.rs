//! Long fault runs by hand (through `scripts/chaos.sh`): a cluster of 3 metas on ZooKeeper and 4
//! replica servers, each process on its own loopback address, under client load, with one fault
//! after another for as long as asked. Every round starts a fresh load on fresh keys, injects one
//! fault (chosen with the seed among those asked for), and checks that round's history for
//! linearizability per key and the replicas for identical checksums. The first failing round
//! stops the run with exit code 1; the cluster's data and logs are kept for a look.

use aerie_tests::nemesis::{fault_settings, keys_named, Fault, FaultCluster};
use aerie_tests::{zookeeper_settings, ProcessClusterOptions, TestZookeeper};
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Faults, one after another, against a real cluster under checked client load")]
struct Args {
    /// How long to run (a round under way is finished).
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// The faults to draw from, comma-separated: kill, stop, cut-meta, cut-peers, meta-kill,
    /// rolling-restart, or all.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Seed of the fault order (default: the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Clients per round that never pause (as many again sleep through each fault).
    #[arg(long, default_value_t = 4)]
    clients: u64,
}

fn faults_asked(scenario: &str) -> Result<Vec<Fault>, String> {
    if scenario == "all" {
        return Ok(Fault::ALL.to_vec());
    }
    scenario.split(',').map(|s| s.trim().parse()).collect()
}

#[derive(Default)]
struct Totals {
    rounds: u64,
    ops_ok: usize,
    ops_unknown: usize,
    keys: usize,
    per_fault: BTreeMap<&'static str, u64>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let faults = faults_asked(&args.scenario).unwrap_or_else(|e| {
        eprintln!("chaos: {e}");
        std::process::exit(2);
    });
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64
    });
    println!(
        "chaos: {} s of {} with --seed {seed}",
        args.seconds,
        faults.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
    );
    let mut rng = SmallRng::seed_from_u64(seed);

    let zk = TestZookeeper::start();
    let mut settings = fault_settings();
    settings.extend(zookeeper_settings(&zk.hosts(), "/aerie/chaos", 3_000));
    // Leases outlast a meta failover (session timeout + election + reload).
    settings.extend([
        "replication.fd_lease_seconds=6".to_string(),
        "replication.fd_grace_seconds=8".to_string(),
    ]);
    let mut cluster = FaultCluster::start(
        ProcessClusterOptions {
            meta_servers: 3,
            replica_servers: 4,
            settings,
            ..Default::default()
        },
        8,
    )
    .await;
    // Kept when a round fails (the process exits without dropping it); removed after a clean run.
    cluster.cluster.dir.disable_cleanup(true);
    let dir = cluster.cluster.dir.path().to_path_buf();
    println!("cluster data and logs in {}", dir.display());

    let started = Instant::now();
    let mut totals = Totals::default();
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let round = totals.rounds + 1;
        let fault = faults[rng.random_range(0..faults.len())];
        let load = cluster
            .load_on(keys_named(&format!("r{round}-k"), 8, 3), args.clients)
            .await;
        load.wait_for_more(300, Duration::from_secs(60)).await;
        let what = cluster.inject(fault, &load).await;
        load.wait_for_more(300, Duration::from_secs(90)).await;
        let report = cluster.check(load).await;
        let line = format!(
            "[{:>5} s] round {round}: {what}: {} keys, {} operations ok, {} unknown, {} records identical",
            started.elapsed().as_secs(),
            report.history.keys,
            report.ops_ok,
            report.ops_unknown,
            report.records
        );
        if !report.history.is_linearizable() || report.ops_ok == 0 {
            println!(
                "{line}\nchaos: round {round} FAILED (--seed {seed}):\n{}",
                report.history.describe()
            );
            println!("cluster data and logs kept in {}", dir.display());
            std::process::exit(1);
        }
        println!("{line}");
        totals.rounds = round;
        totals.ops_ok += report.ops_ok;
        totals.ops_unknown += report.ops_unknown;
        totals.keys += report.history.keys;
        *totals.per_fault.entry(fault.name()).or_default() += 1;
    }
    let per_fault: Vec<String> = totals.per_fault.iter().map(|(f, n)| format!("{f} ×{n}")).collect();
    println!(
        "chaos: {} rounds in {} s ({}), {} keys checked, {} operations ok, {} with unknown outcome: \
         every history linearizable, replicas identical after every round",
        totals.rounds,
        started.elapsed().as_secs(),
        per_fault.join(", "),
        totals.keys,
        totals.ops_ok,
        totals.ops_unknown
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
