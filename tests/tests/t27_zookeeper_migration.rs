//! ZooKeeper migration with `scripts/migrate_zookeeper.sh`, by both methods, between two real
//! ZooKeeper servers: two metas on the old one, three replica servers, two tables with data. The
//! script stops and starts the metas through a small control script (pid files), as an operator's
//! deployment would. Afterwards `ls -d` and `app NAME -d` show exactly what they showed before
//! (by recovery too: every replica answered, so each partition's last configuration comes back at
//! its ballot), the new ZooKeeper holds the cluster map, and every record is readable.

use aerie_tests::{
    aerie_bin, checkout_file, fast_failure_detection, wait_fully_healthy, ProcessCluster, ProcessClusterOptions,
    TestZookeeper,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = "/aerie/t27";
const TABLES: [(&str, u32); 2] = [("t1", 4), ("t2", 8)];
const RECORDS: usize = 300;

fn meta_config(zk_hosts: &str) -> String {
    format!(
        "[meta_server]\nmeta_store = \"zookeeper\"\ncluster_root = \"{ROOT}\"\n\n[zookeeper]\nhosts_list = \"{zk_hosts}\"\ntimeout_ms = 3000\n"
    )
}

/// Stops metas started by the script (and the harness's, through their pid files) at the end.
struct MetaControl {
    script: PathBuf,
    ports: Vec<u16>,
}

impl MetaControl {
    /// Writes `metactl.sh stop|start PORT`, which the migration script's templates call.
    fn new(cluster: &ProcessCluster) -> MetaControl {
        let dir = cluster.data_dir();
        let mut starts = String::new();
        let mut ports = Vec::new();
        for (i, (addr, meta)) in cluster.meta_addrs.iter().zip(&cluster.metas).enumerate() {
            let port = addr.0.port();
            ports.push(port);
            std::fs::write(dir.join(format!("meta-{port}.pid")), meta.pid().unwrap().to_string()).unwrap();
            let args: Vec<String> = meta.args().iter().map(|a| format!("'{a}'")).collect();
            starts.push_str(&format!(
                "    {port}) nohup '{}' {} >>'{}' 2>&1 & echo $! >\"$pidfile\" ;;\n",
                aerie_bin().display(),
                args.join(" "),
                dir.join(format!("meta{i}-restarted.log")).display()
            ));
        }
        let script = dir.join("metactl.sh");
        std::fs::write(
            &script,
            format!(
                r#"#!/usr/bin/env bash
# metactl.sh stop|start PORT
set -u
pidfile='{dir}/meta-'"$2"'.pid'
case "$1" in
stop)
    if [ -f "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        kill -9 "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$pidfile"
    fi ;;
start)
    case "$2" in
{starts}    esac ;;
esac
"#,
                dir = dir.display()
            ),
        )
        .unwrap();
        MetaControl { script, ports }
    }
}

impl Drop for MetaControl {
    fn drop(&mut self) {
        for port in &self.ports {
            let _ = Command::new("bash")
                .arg(&self.script)
                .args(["stop", &port.to_string()])
                .status();
        }
    }
}

fn listings(cluster: &ProcessCluster) -> Vec<String> {
    let mut out = Vec::new();
    let ls = cluster.shell_exec("ls -d");
    assert!(ls.success, "{}", ls.stderr);
    out.push(ls.stdout);
    for (name, _) in TABLES {
        let app = cluster.shell_exec(&format!("app {name} -d"));
        assert!(app.success, "{}", app.stderr);
        out.push(app.stdout);
    }
    out
}

fn run_migration(cluster: &ProcessCluster, control: &MetaControl, method: &str, to: &str, dir: &Path) -> String {
    let configs: Vec<String> = (0..cluster.metas.len())
        .map(|i| cluster.meta_config_path(i).display().to_string())
        .collect();
    let script = checkout_file("scripts/migrate_zookeeper.sh");
    let ctl = control.script.display();
    let output = Command::new("bash")
        .arg(script)
        .args(["--method", method, "-m", &cluster.meta_list(), "-c", &configs.join(",")])
        .args(["--to-zk", to, "-w", "5", "--dir"])
        .arg(dir)
        .args([
            "--stop",
            &format!("bash {ctl} stop %p"),
            "--start",
            &format!("bash {ctl} start %p"),
        ])
        .env("AERIE_BIN", aerie_bin())
        .output()
        .expect("run migrate_zookeeper.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "migrate_zookeeper.sh --method {method} failed:\n{text}"
    );
    text
}

async fn migrate(method: &str) {
    let (old, new) = (TestZookeeper::start(), TestZookeeper::start());
    let cluster = ProcessCluster::start(ProcessClusterOptions {
        meta_servers: 2,
        replica_servers: 3,
        meta_config: Some(meta_config(&old.hosts())),
        settings: fast_failure_detection(&[]),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    for (name, partitions) in TABLES {
        admin.create_table(name, partitions, 3).await.unwrap();
        wait_fully_healthy(&admin, name, Duration::from_secs(60)).await;
        let table = admin.table(name).await.unwrap();
        for i in 0..RECORDS {
            table
                .set(format!("k{i}").as_bytes(), b"s", format!("{name}-{i}").as_bytes(), 0)
                .await
                .unwrap();
        }
    }
    // The operator's level (kept in the meta store) comes through the migration, blind or not.
    admin.set_meta_level(aerie_common::MetaLevel::Lively).await.unwrap();
    let before = listings(&cluster);

    let control = MetaControl::new(&cluster);
    let work = cluster.data_dir().join(format!("migration-{method}"));
    let output = run_migration(&cluster, &control, method, &new.hosts(), &work);
    if method == "recover" {
        assert!(output.contains("Recover result: ERR_OK"), "{output}");
    }

    let info = admin.cluster_info().await.unwrap();
    assert_eq!(info.zookeeper_hosts, new.hosts(), "{output}");
    let level = admin.meta_level().await.unwrap();
    assert_eq!(level.stored, aerie_common::MetaLevel::Lively, "{output}");
    let after = listings(&cluster);
    assert_eq!(after, before, "the listings changed; script output:\n{output}");
    for (name, _) in TABLES {
        let table = admin.table(name).await.unwrap();
        for i in 0..RECORDS {
            let value = table.get(format!("k{i}").as_bytes(), b"s").await.unwrap();
            assert_eq!(value.as_deref(), Some(format!("{name}-{i}").as_bytes()), "{name} k{i}");
        }
    }
    // The new ZooKeeper holds the map: zkCli-readable JSON under the root.
    let store_check = Command::new("/usr/share/zookeeper/bin/zkCli.sh")
        .args(["-server", &new.hosts(), "ls", &format!("{ROOT}/apps")])
        .output()
        .expect("zkCli.sh");
    let listed = String::from_utf8_lossy(&store_check.stdout);
    assert!(listed.contains("[1, 2]"), "zkCli ls {ROOT}/apps: {listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_by_recovery_from_the_replica_servers() {
    migrate("recover").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_by_copying_the_subtree() {
    migrate("copy").await;
}
