//! Recovery benchmarks against real `aerie` processes (run through `scripts/bench_recovery.sh`):
//!
//! - `failover`: SIGKILL the replica server leading the most partitions, default settings; how long
//!   until every partition accepts writes again (each partition probed continuously).
//! - `meta-failover`: three metas on ZooKeeper (default session timeout), SIGKILL the leader while
//!   every partition is written continuously; how long until another meta leads, and the longest
//!   pause between successful writes of any partition.
//! - `learning`: a ~1 GB partition loses a secondary; how fast the new one learns (MB/s), and the
//!   p99 of `aerie bench` workload A on another table, run as its own process, before and during
//!   the copy.
//! - `scale-out`: two replica servers join three that hold a 32-partition table of ~GIB; at level
//!   lively, how long until the table is balanced, and how much was copied against the lower bound.
//! - `rolling-update`: four replica servers holding ~GIB under `aerie bench` workload A (1 s
//!   timeout); `aerie rolling-update` restarts every process, then the Pegasus "simplified"
//!   procedure (a plain restart of each replica server) runs for comparison; for both: the roll's
//!   time, time per node, the longest write stall of any partition, failed requests, p99 during.

use aerie_client::Table;
use aerie_common::{partition_index, NodeAddr};
use aerie_proto::meta::QueryBalancePlan;
use aerie_tests::{
    aerie_bin, balance_moves, balance_moves_given_up, learned_by_source, learned_bytes, metrics, sample,
    wait_fully_healthy, wait_until, ProcessCluster, ProcessClusterOptions, RollOptions,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 8;

fn key_in(pidx: u32, partitions: u32, n: u64) -> Vec<u8> {
    (0u64..)
        .map(|i| format!("p{pidx}-{n}-{i}").into_bytes())
        .find(|k| partition_index(k, b"", partitions) == pidx)
        .expect("some key hashes to every partition")
}

/// One entry per probe write: partition, started, finished, succeeded.
type ProbeLog = Arc<Mutex<Vec<(u32, Instant, Instant, bool)>>>;

/// Writes to one partition in a loop; records when each write finished and whether it succeeded.
async fn probe(table: Table, pidx: u32, stop: Arc<AtomicBool>, log: ProbeLog) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let started = Instant::now();
        let ok = table.set(&key_in(pidx, PARTITIONS, n), b"s", b"v", 0).await.is_ok();
        log.lock().unwrap().push((pidx, started, Instant::now(), ok));
        if !ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One probe per partition; returns the stop flag, the shared log and the probes' tasks.
fn start_probes(table: &Table) -> (Arc<AtomicBool>, ProbeLog, Vec<tokio::task::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let log: ProbeLog = Arc::new(Mutex::new(Vec::new()));
    let probes = (0..PARTITIONS)
        .map(|p| tokio::spawn(probe(table.clone(), p, stop.clone(), log.clone())))
        .collect();
    (stop, log, probes)
}

async fn failover(trials: usize) {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let admin = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("failover", PARTITIONS, 3).await.unwrap();
    println!("failover: 1 meta + 3 replica servers, default settings (fd_grace_seconds = 10), table of {PARTITIONS} partitions");
    let mut worst = Vec::new();
    for trial in 1..=trials {
        let client = cluster.client(Duration::from_millis(500));
        let table = client.table("failover").await.unwrap();
        let (stop, log, probes) = start_probes(&table);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let app = admin.query_config("failover").await.unwrap();
        let victim: NodeAddr = *cluster
            .replica_addrs
            .iter()
            .max_by_key(|n| app.partitions.iter().filter(|p| p.primary == Some(**n)).count())
            .unwrap();
        let led: Vec<u32> = app
            .partitions
            .iter()
            .filter(|p| p.primary == Some(victim))
            .map(|p| p.gpid.pidx)
            .collect();
        let index = cluster.replica_addrs.iter().position(|a| *a == victim).unwrap();
        let killed_at = Instant::now();
        cluster.replicas[index].kill();
        // Every partition must have a write that started after the kill and succeeded.
        let recovered = wait_until("every partition to accept writes", Duration::from_secs(120), || {
            let log = log.clone();
            async move {
                let log = log.lock().unwrap();
                let mut times = Vec::new();
                for pidx in 0..PARTITIONS {
                    let first = log
                        .iter()
                        .filter(|(p, started, _, ok)| *p == pidx && *ok && *started >= killed_at)
                        .map(|(_, _, done, _)| done.duration_since(killed_at))
                        .min();
                    match first {
                        Some(t) => times.push((pidx, t)),
                        None => return Err(format!("partition {pidx} not yet")),
                    }
                }
                Ok(times)
            }
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        for p in probes {
            let _ = p.await;
        }
        let max = recovered.iter().map(|(_, t)| *t).max().unwrap();
        let led_times: Vec<String> = recovered
            .iter()
            .filter(|(p, _)| led.contains(p))
            .map(|(p, t)| format!("{p}:{:.2}s", t.as_secs_f64()))
            .collect();
        let others = recovered
            .iter()
            .filter(|(p, _)| !led.contains(p))
            .map(|(_, t)| *t)
            .max();
        println!(
            "  trial {trial}: killed {victim} (primary of {} partitions); all {PARTITIONS} partitions writable after {:.2} s; its partitions {}; the others after at most {:.2} s",
            led.len(),
            max.as_secs_f64(),
            led_times.join(" "),
            others.unwrap_or_default().as_secs_f64()
        );
        worst.push(max);
        cluster.replicas[index].restart();
        wait_fully_healthy(&admin, "failover", Duration::from_secs(120)).await;
    }
    let mean = worst.iter().map(Duration::as_secs_f64).sum::<f64>() / worst.len() as f64;
    println!("failover: mean {mean:.2} s over {trials} trials (every partition writable again)");
}

async fn meta_failover(trials: usize) {
    let zk = aerie_tests::TestZookeeper::start();
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        meta_servers: 3,
        settings: vec![
            "meta_server.meta_store=zookeeper".into(),
            format!("zookeeper.hosts_list={}", zk.hosts()),
        ],
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("failover", PARTITIONS, 3).await.unwrap();
    wait_fully_healthy(&admin, "failover", Duration::from_secs(60)).await;
    println!("meta-failover: 3 metas on ZooKeeper, 3 replica servers, default settings (zookeeper.timeout_ms = 5000, fd_lease_seconds = 8), table of {PARTITIONS} partitions written continuously");
    for trial in 1..=trials {
        let client = cluster.client(Duration::from_millis(500));
        let table = client.table("failover").await.unwrap();
        let (stop, log, probes) = start_probes(&table);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leader = admin.cluster_info().await.unwrap().primary_meta_server;
        let index = cluster.meta_addrs.iter().position(|a| *a == leader).unwrap();
        let killed_at = Instant::now();
        cluster.metas[index].kill();
        let new_leader = wait_until("another meta to lead", Duration::from_secs(60), || async {
            match admin.cluster_info().await {
                Ok(info) if info.primary_meta_server != leader => Ok(info.primary_meta_server),
                Ok(_) => Err("the dead leader is still named".to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        let took = killed_at.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        for p in probes {
            let _ = p.await;
        }
        let log = std::mem::take(&mut *log.lock().unwrap());
        let failed = log
            .iter()
            .filter(|(_, started, _, ok)| *started >= killed_at && !ok)
            .count();
        let writes = log
            .iter()
            .filter(|(_, started, _, ok)| *started >= killed_at && *ok)
            .count();
        let longest_pause = (0..PARTITIONS)
            .filter_map(|pidx| {
                let mut done: Vec<Instant> = log
                    .iter()
                    .filter(|(p, _, _, ok)| *p == pidx && *ok)
                    .map(|(_, _, finished, _)| *finished)
                    .collect();
                done.sort();
                done.windows(2).map(|w| w[1] - w[0]).max()
            })
            .max()
            .unwrap_or_default();
        println!(
            "  trial {trial}: killed leader {leader}; {new_leader} led {:.2} s later; {writes} writes succeeded and {failed} failed after the kill; longest pause between successful writes of a partition {:.0} ms",
            took.as_secs_f64(),
            longest_pause.as_secs_f64() * 1000.0
        );
        cluster.metas[index].restart();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn incompressible(i: u64, len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (i + 1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs `aerie bench` against the cluster as a separate process and returns what it printed.
fn aerie_bench(meta: NodeAddr, args: &[&str]) -> String {
    let output = std::process::Command::new(aerie_bin())
        .arg("bench")
        .arg("--meta")
        .arg(meta.to_string())
        .args(args)
        .output()
        .expect("aerie bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "aerie bench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn checkpoint_bytes(node: NodeAddr) -> f64 {
    sample(
        &metrics(node),
        &format!("aerie_replica_learn_bytes_total{{node=\"{node}\",source=\"checkpoint\"}}"),
    )
}

fn checkpoint_rounds(node: NodeAddr) -> f64 {
    sample(
        &metrics(node),
        &format!("aerie_replica_learn_rounds_total{{node=\"{node}\",source=\"checkpoint\"}}"),
    )
}

const FOREGROUND: &[&str] = &["--table", "fg", "--records", "100000", "--threads", "32"];
/// The default `learn_rate_limit_mb`.
const RATE_LIMIT_MIB: f64 = 100.0;

/// Writes `records` values of 1 KiB of incompressible data, 16 writers at a time.
async fn load_incompressible(table: &Table, records: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..16)
        .map(|_| {
            let (table, next) = (table.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= records {
                        return;
                    }
                    table
                        .set(format!("r{i:09}").as_bytes(), b"s", &incompressible(i, 1024), 0)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for l in loaders {
        l.await.unwrap();
    }
}

async fn scale_out(gib: f64) {
    const TABLE_PARTITIONS: u32 = 32;
    let mut cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let admin = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("grow", TABLE_PARTITIONS, 3).await.unwrap();
    let table = cluster.client(Duration::from_secs(30)).table("grow").await.unwrap();
    let records = (gib * 1024.0 * 1024.0) as u64;
    let started = Instant::now();
    load_incompressible(&table, records).await;
    println!(
        "scale-out: loaded {records} records of 1 KiB ({gib:.2} GiB) into {TABLE_PARTITIONS} partitions on 3 replica servers in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Let every replica report its size to the meta (config sync) so that the plan can say it.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let new_nodes = [cluster.add_replica(1), cluster.add_replica(1)];
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    let plan = wait_until("the balancer's plan", Duration::from_secs(60), || async {
        let plan = admin.meta(QueryBalancePlan {}).await.map_err(|e| e.to_string())?;
        if plan.moves.is_empty() {
            Err("no plan yet".to_string())
        } else {
            Ok(plan)
        }
    })
    .await;
    let copies_planned = plan.moves.iter().filter(|m| m.the_move.kind.copies_data()).count();
    let plan_bytes: u64 = plan.moves.iter().filter_map(|m| m.copy_bytes).sum();
    println!(
        "scale-out: the plan: {} moves, {copies_planned} copies (lower bound {}), {:.0} MB to copy",
        plan.moves.len(),
        plan.copy_lower_bound,
        plan_bytes as f64 / 1e6
    );
    let all_nodes = cluster.replica_addrs.clone();
    let learned_before: f64 = all_nodes.iter().map(|n| learned_bytes(*n)).sum();
    let started = Instant::now();
    admin.set_meta_level(aerie_common::MetaLevel::Lively).await.unwrap();
    wait_until("the table to be balanced", Duration::from_secs(3600), || async {
        let app = admin.query_config("grow").await.map_err(|e| e.to_string())?;
        let remaining = admin
            .cluster_info()
            .await
            .map_err(|e| e.to_string())?
            .balance_operation_count;
        let mut replicas: std::collections::BTreeMap<NodeAddr, u32> = all_nodes.iter().map(|n| (*n, 0)).collect();
        for member in app.partitions.iter().flat_map(|p| p.members()) {
            *replicas.entry(member).or_default() += 1;
        }
        let spread = replicas.values().max().unwrap() - replicas.values().min().unwrap();
        let whole = app
            .partitions
            .iter()
            .all(|p| p.replica_count() == 3 && p.primary.is_some());
        if remaining == 0 && whole && spread <= 1 {
            Ok(())
        } else {
            Err(format!("{remaining} operations left, replicas per node {replicas:?}"))
        }
    })
    .await;
    let took = started.elapsed();
    admin.set_meta_level(aerie_common::MetaLevel::Steady).await.unwrap();
    let learned: f64 = all_nodes.iter().map(|n| learned_bytes(*n)).sum::<f64>() - learned_before;
    let done = |kind: &str| balance_moves(cluster.meta_addr, kind, "done");
    println!(
        "scale-out: balanced {:.1} s after set_meta_level lively: {} move_pri, {} copy_pri, {} copy_sec ({} copies; lower bound {}; {} moves given up); {:.0} MB learned ({:.0} MB/s); the new nodes {} and {}",
        took.as_secs_f64(),
        done("move_pri"),
        done("copy_pri"),
        done("copy_sec"),
        done("copy_pri") + done("copy_sec"),
        plan.copy_lower_bound,
        balance_moves_given_up(cluster.meta_addr),
        learned / 1e6,
        learned / 1e6 / took.as_secs_f64(),
        new_nodes[0],
        new_nodes[1]
    );
    drop(cluster);
}

async fn learning(gib: f64) {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: vec![
            "meta_server.replica_assign_delay_ms_for_dropouts=1000".into(),
            "replication.learn_cache_mutations=1000".into(),
        ],
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("big", 1, 3).await.unwrap();
    let client = cluster.client(Duration::from_secs(30));
    let big = client.table("big").await.unwrap();
    let records = (gib * 1024.0 * 1024.0) as u64; // 1 KiB values
    let load_started = Instant::now();
    load_incompressible(&big, records).await;
    println!(
        "learning: loaded {records} records of 1 KiB ({gib:.2} GiB) into one partition in {:.0} s",
        load_started.elapsed().as_secs_f64()
    );

    let meta = cluster.meta_addr;
    let workload = move |seconds: u64| {
        let duration = seconds.to_string();
        let mut args = FOREGROUND.to_vec();
        args.extend(["--workloads", "a", "--duration", duration.as_str()]);
        aerie_bench(meta, &args)
    };
    aerie_bench(meta, &[FOREGROUND, &["--workloads", "load"]].concat());
    // The copy runs at the rate limit; the "during" run must end before the copy does.
    let copy_seconds = gib * 1024.0 / RATE_LIMIT_MIB;
    let during_seconds = ((copy_seconds * 0.7) as u64).max(3);
    let before = workload(during_seconds);

    let app = admin.query_config("big").await.unwrap();
    let victim = app.partitions[0].secondaries[0];
    let fourth = *cluster
        .replica_addrs
        .iter()
        .find(|a| !app.partitions[0].is_member(**a))
        .unwrap();
    let index = cluster.replica_addrs.iter().position(|a| *a == victim).unwrap();
    let killed = Instant::now();
    cluster.replicas[index].kill();
    wait_until("the checkpoint copy to start", Duration::from_secs(120), || async {
        if checkpoint_bytes(fourth) > 0.0 {
            Ok(())
        } else {
            Err("no checkpoint bytes yet".to_string())
        }
    })
    .await;
    let copy_began = killed.elapsed();
    let during = tokio::task::spawn_blocking(move || workload(during_seconds))
        .await
        .unwrap();
    let overlapped = checkpoint_rounds(fourth) == 0.0;
    wait_fully_healthy(&admin, "big", Duration::from_secs(3600)).await;
    let healed = killed.elapsed();

    let text = metrics(fourth);
    let node = fourth.to_string();
    let bytes: f64 = ["cache", "log", "checkpoint"]
        .iter()
        .map(|s| {
            sample(
                &text,
                &format!("aerie_replica_learn_bytes_total{{node=\"{node}\",source=\"{s}\"}}"),
            )
        })
        .sum();
    let log = cluster.replicas[cluster.replica_addrs.iter().position(|a| *a == fourth).unwrap()].log_tail(2000);
    let copy_line = log
        .lines()
        .find(|l| l.contains("checkpoint copied"))
        .unwrap_or("")
        .to_string();
    println!(
        "learning: the new secondary on {fourth} received {:.0} MB ({:.0} MB as a checkpoint); the copy began {:.1} s after the kill; fully healthy {:.1} s after the kill",
        bytes / 1e6,
        checkpoint_bytes(fourth) / 1e6,
        copy_began.as_secs_f64(),
        healed.as_secs_f64()
    );
    println!(
        "learning: {}",
        copy_line.split_once("INFO ").map(|(_, r)| r).unwrap_or(&copy_line)
    );
    println!(
        "aerie bench {} --workloads a --duration {during_seconds}, before the kill:\n{before}",
        FOREGROUND.join(" ")
    );
    println!(
        "the same, started as the copy began{}:\n{during}",
        if overlapped {
            " (the copy was still running when it ended)"
        } else {
            " (WARNING: the copy ended first)"
        }
    );
    drop(cluster);
}

/// Per partition, the longest time without a successful write, over the probe log (from its first
/// entry to its last); and the failed writes.
fn stalls(log: &ProbeLog) -> (Duration, usize) {
    let log = log.lock().unwrap();
    let (Some(first), Some(last)) = (log.iter().map(|e| e.1).min(), log.iter().map(|e| e.2).max()) else {
        return (Duration::ZERO, 0);
    };
    let failed = log.iter().filter(|e| !e.3).count();
    let longest = (0..PARTITIONS)
        .map(|pidx| {
            let mut done: Vec<Instant> = log.iter().filter(|e| e.0 == pidx && e.3).map(|e| e.2).collect();
            done.sort();
            let mut previous = first;
            let mut longest = Duration::ZERO;
            for t in done.into_iter().chain([last]) {
                longest = longest.max(t.saturating_duration_since(previous));
                previous = t;
            }
            longest
        })
        .max()
        .unwrap_or_default();
    (longest, failed)
}

/// The p99 and error lines of `aerie bench` outputs.
fn summarize_bench(outputs: &[String]) -> String {
    outputs
        .iter()
        .flat_map(|o| o.lines().filter(|l| l.contains("ops/s") || l.contains("p99=")))
        .map(|l| format!("    {}", l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn rolling_update(gib: f64) {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("roll", PARTITIONS, 3).await.unwrap();
    let records = (gib * 1024.0 * 1024.0) as u64;
    let started = Instant::now();
    load_incompressible(
        &cluster.client(Duration::from_secs(30)).table("roll").await.unwrap(),
        records,
    )
    .await;
    let meta = cluster.meta_addr;
    aerie_bench(meta, &[FOREGROUND, &["--workloads", "load"]].concat());
    wait_fully_healthy(&admin, "roll", Duration::from_secs(600)).await;
    println!(
        "rolling-update: 1 meta + 4 replica servers, table roll of {PARTITIONS} partitions x 3 replicas with {records} records of 1 KiB ({gib:.2} GiB) loaded in {:.0} s; foreground `aerie bench {} --workloads a --timeout_ms 1000`",
        started.elapsed().as_secs_f64(),
        FOREGROUND.join(" ")
    );
    let workload = move |seconds: u64| {
        let duration = seconds.to_string();
        let mut args = FOREGROUND.to_vec();
        args.extend([
            "--workloads",
            "a",
            "--duration",
            duration.as_str(),
            "--timeout_ms",
            "1000",
        ]);
        aerie_bench(meta, &args)
    };
    println!("  before, 20 s:\n{}", summarize_bench(&[workload(20)]));
    for procedure in ["aerie rolling-update", "simplified (restart each replica server)"] {
        let table = cluster.client(Duration::from_secs(1)).table("roll").await.unwrap();
        let (stop, log, probes) = start_probes(&table);
        let bench_stop = Arc::new(AtomicBool::new(false));
        let bench_loop = {
            let stop = bench_stop.clone();
            std::thread::spawn(move || {
                let mut outputs = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    outputs.push(workload(15));
                }
                outputs
            })
        };
        let began = Instant::now();
        let mut per_node = Vec::new();
        let mut checkpoint = 0.0;
        if procedure.starts_with("aerie") {
            let outcome = tokio::task::block_in_place(|| {
                cluster.rolling_update(&RollOptions::default(), Duration::from_secs(3600))
            });
            assert!(outcome.output.success, "{outcome:?}");
            checkpoint += outcome.checkpoint_bytes_before_restart;
            per_node.extend(
                outcome
                    .output
                    .stdout
                    .lines()
                    .skip_while(|l| !l.contains("rolling update done"))
                    .skip(1)
                    .map(|l| l.trim().to_string()),
            );
        } else {
            for i in 0..cluster.replicas.len() {
                let node_began = Instant::now();
                checkpoint += learned_by_source(cluster.replica_addrs[i]).0;
                tokio::task::block_in_place(|| cluster.replicas[i].restart_clean(Duration::from_secs(60)));
                cluster.wait_all_alive(&admin, Duration::from_secs(120)).await;
                wait_fully_healthy(&admin, "roll", Duration::from_secs(600)).await;
                per_node.push(format!(
                    "replica {}: {:.1} s",
                    cluster.replica_addrs[i],
                    node_began.elapsed().as_secs_f64()
                ));
            }
        }
        let took = began.elapsed();
        bench_stop.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for p in probes {
            let _ = p.await;
        }
        let outputs = tokio::task::block_in_place(|| bench_loop.join().unwrap());
        let (longest, failed) = stalls(&log);
        checkpoint += cluster
            .replica_addrs
            .iter()
            .map(|n| learned_by_source(*n).0)
            .sum::<f64>();
        println!(
            "  {procedure}: {:.1} s in all; longest write stall of a partition {:.2} s; {failed} failed probe writes (1 s timeout); {:.0} MB learned from checkpoints",
            took.as_secs_f64(),
            longest.as_secs_f64(),
            checkpoint / 1e6
        );
        for line in &per_node {
            println!("    {line}");
        }
        println!(
            "  workload A during it ({} runs of 15 s):\n{}",
            outputs.len(),
            summarize_bench(&outputs)
        );
        wait_fully_healthy(&admin, "roll", Duration::from_secs(600)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("failover") => failover(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3)).await,
        Some("meta-failover") => meta_failover(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3)).await,
        Some("learning") => learning(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1.0)).await,
        Some("scale-out") => scale_out(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(2.0)).await,
        Some("rolling-update") => rolling_update(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1.0)).await,
        _ => {
            eprintln!(
                "usage: bench-recovery failover [TRIALS] | meta-failover [TRIALS] | learning [GIB] | scale-out [GIB] | rolling-update [GIB]"
            );
            std::process::exit(2);
        }
    }
}
