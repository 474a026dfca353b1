//! A cluster of separate `aerie` processes: meta servers (one with the embedded store, or several
//! over ZooKeeper) and N replica servers on loopback.

use crate::process::AerieProcess;
use crate::wait::wait_until;
use aerie_client::{Client, ClientOptions};
use aerie_common::NodeAddr;
use aerie_proto::meta::NodeStatus;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ProcessClusterOptions {
    pub replica_servers: usize,
    /// Meta servers; more than one needs the ZooKeeper store (see [`zookeeper_settings`]).
    pub meta_servers: usize,
    /// A TOML config file every meta reads (`--config`; `settings` still win over it).
    pub meta_config: Option<String>,
    /// Extra `section.key=value` settings for every process.
    pub settings: Vec<String>,
    /// Give every process its own loopback address (meta `i`: 127.0.1.(1+i), replica server `i`:
    /// 127.0.0.(11+i)) and bind its outgoing connections to it, so that a [`crate::Firewall`] can
    /// cut the links between two processes.
    pub own_addresses: bool,
    /// Extra environment variables for every process.
    pub env: Vec<(String, String)>,
}

/// Failure detection shortened for tests, each setting as `section.key=value`: beacons every second,
/// lease 3 s, grace 4 s, and prepares that time out after a second; then `extra`.
pub fn fast_failure_detection(extra: &[&str]) -> Vec<String> {
    [
        "replication.fd_beacon_interval_seconds=1",
        "replication.fd_lease_seconds=3",
        "replication.fd_grace_seconds=4",
        "replication.prepare_timeout_ms=1000",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// Settings for meta servers on ZooKeeper at `hosts`, under `root`, with a session timeout.
pub fn zookeeper_settings(hosts: &str, root: &str, session_timeout_ms: u64) -> Vec<String> {
    vec![
        "meta_server.meta_store=zookeeper".to_string(),
        format!("meta_server.cluster_root={root}"),
        format!("zookeeper.hosts_list={hosts}"),
        format!("zookeeper.timeout_ms={session_timeout_ms}"),
    ]
}

impl Default for ProcessClusterOptions {
    fn default() -> Self {
        ProcessClusterOptions {
            replica_servers: 3,
            meta_servers: 1,
            meta_config: None,
            settings: Vec::new(),
            own_addresses: false,
            env: Vec::new(),
        }
    }
}

/// What a shell run printed.
#[derive(Debug)]
pub struct ShellOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

pub struct ProcessCluster {
    pub dir: tempfile::TempDir,
    /// The first meta server.
    pub meta_addr: NodeAddr,
    pub meta_addrs: Vec<NodeAddr>,
    pub metas: Vec<AerieProcess>,
    pub replica_addrs: Vec<NodeAddr>,
    pub replicas: Vec<AerieProcess>,
    /// The collector, once [`ProcessCluster::start_collector`] started it.
    pub collector: Option<(NodeAddr, AerieProcess)>,
    /// Settings every process gets.
    common: Vec<String>,
    env: Vec<(String, String)>,
    own_addresses: bool,
}

/// A free address on `ip`.
fn address(ip: String) -> NodeAddr {
    let port = aerie_common::ports::free_port_on(ip.parse().expect("an IP"));
    format!("{ip}:{port}").parse().expect("an address")
}

fn settings(pairs: &[String]) -> Vec<String> {
    pairs.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect()
}

impl ProcessCluster {
    pub fn start(options: ProcessClusterOptions) -> Self {
        let mut dir = tempfile::tempdir().expect("temp dir");
        // AERIE_KEEP_TEST_DIRS=1 keeps every process's data and log for a look afterwards.
        if std::env::var_os("AERIE_KEEP_TEST_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("cluster data and logs kept in {}", dir.path().display());
        }
        let own = options.own_addresses;
        let meta_addrs: Vec<NodeAddr> = (0..options.meta_servers.max(1))
            .map(|i| {
                address(if own {
                    format!("127.0.1.{}", 1 + i)
                } else {
                    "127.0.0.1".into()
                })
            })
            .collect();
        let list = meta_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
        let mut common = vec![format!("meta_server.server_list={list}"), "log.level=info".to_string()];
        common.extend(options.settings.iter().cloned());

        let metas = meta_addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let name = if i == 0 { "meta".to_string() } else { format!("meta{i}") };
                let mut args = vec!["--role".to_string(), "meta".to_string()];
                if let Some(config) = &options.meta_config {
                    let file = dir.path().join(format!("{name}.toml"));
                    std::fs::write(&file, config).expect("write the meta config");
                    args.extend(["--config".to_string(), file.display().to_string()]);
                }
                args.extend(settings(&common));
                args.extend(settings(&[
                    format!("meta_server.address={addr}"),
                    format!("meta_server.data_dir={}", dir.path().join(&name).display()),
                ]));
                if own {
                    args.extend(settings(&[format!(
                        "network.source_address={}",
                        addr.socket_addr().ip()
                    )]));
                }
                AerieProcess::start_with_env(&name, args, dir.path().join(format!("{name}.log")), options.env.clone())
            })
            .collect();

        let mut cluster = ProcessCluster {
            dir,
            meta_addr: meta_addrs[0],
            meta_addrs,
            metas,
            replica_addrs: Vec::new(),
            replicas: Vec::new(),
            collector: None,
            common,
            own_addresses: own,
            env: options.env.clone(),
        };
        for _ in 0..options.replica_servers {
            cluster.add_replica(1);
        }
        cluster
    }

    /// Starts one more replica server (scale out) with `data_dirs` data directories; returns its address.
    pub fn add_replica(&mut self, data_dirs: usize) -> NodeAddr {
        let i = self.replicas.len();
        let addr = address(if self.own_addresses {
            format!("127.0.0.{}", 11 + i)
        } else {
            "127.0.0.1".into()
        });
        let dirs = match data_dirs {
            1 => format!("default:{}", self.dir.path().join(format!("replica{i}")).display()),
            n => (0..n)
                .map(|d| {
                    format!(
                        "disk{d}:{}",
                        self.dir.path().join(format!("replica{i}-disk{d}")).display()
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut args = vec!["--role".to_string(), "replica".to_string()];
        args.extend(settings(&self.common));
        args.extend(settings(&[
            format!("replication.address={addr}"),
            format!("replication.data_dirs={dirs}"),
        ]));
        if self.own_addresses {
            args.extend(settings(&[format!(
                "network.source_address={}",
                addr.socket_addr().ip()
            )]));
        }
        self.replicas.push(AerieProcess::start_with_env(
            &format!("replica{i}"),
            args,
            self.dir.path().join(format!("replica{i}.log")),
            self.env.clone(),
        ));
        self.replica_addrs.push(addr);
        addr
    }

    /// Starts the collector; returns its address.
    pub fn start_collector(&mut self) -> NodeAddr {
        let addr = address("127.0.0.1".into());
        let mut args = vec!["--role".to_string(), "collector".to_string()];
        args.extend(settings(&self.common));
        args.extend(settings(&[format!("collector.address={addr}")]));
        let process = AerieProcess::start_with_env(
            "collector",
            args,
            self.dir.path().join("collector.log"),
            self.env.clone(),
        );
        self.collector = Some((addr, process));
        addr
    }

    /// The process serving at `addr` (a meta, a replica server or the collector).
    pub fn process_at(&mut self, addr: NodeAddr) -> Option<&mut AerieProcess> {
        if let Some(i) = self.meta_addrs.iter().position(|a| *a == addr) {
            return self.metas.get_mut(i);
        }
        if let Some(i) = self.replica_addrs.iter().position(|a| *a == addr) {
            return self.replicas.get_mut(i);
        }
        self.collector.as_mut().filter(|(a, _)| *a == addr).map(|(_, p)| p)
    }

    pub fn client(&self, timeout: Duration) -> Client {
        Client::new(
            self.meta_addrs.clone(),
            ClientOptions {
                timeout,
                // Longer than a table creation may wait for its partitions to open
                // (`meta_server.create_wait_ready_ms`, 10 s), which a busy machine can need.
                meta_timeout: Duration::from_secs(15),
                ..Default::default()
            },
        )
        .expect("client")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Waits until the meta lists every replica server as alive.
    pub async fn wait_all_alive(&self, client: &Client, timeout: Duration) {
        let expected = self.replica_addrs.clone();
        wait_until("every replica server ALIVE", timeout, || {
            let client = client.clone();
            let expected = expected.clone();
            async move {
                let nodes = client.list_nodes().await.map_err(|e| e.to_string())?;
                let alive = nodes
                    .iter()
                    .filter(|n| n.status == NodeStatus::Alive && expected.contains(&n.address))
                    .count();
                if alive == expected.len() {
                    Ok(())
                } else {
                    Err(format!("{alive} of {} alive", expected.len()))
                }
            }
        })
        .await
    }

    pub fn kill_all(&mut self) {
        for meta in &mut self.metas {
            meta.kill();
        }
        for replica in &mut self.replicas {
            replica.kill();
        }
    }

    pub fn restart_all(&mut self) {
        for meta in &mut self.metas {
            meta.restart();
        }
        for replica in &mut self.replicas {
            replica.restart();
        }
    }

    /// Runs `aerie shell --meta <meta> <args>`, with `stdin` as its standard input.
    pub fn shell(&self, args: &[&str], stdin: &str) -> ShellOutput {
        use std::io::Write;
        let mut child = std::process::Command::new(crate::process::aerie_bin())
            .arg("shell")
            .arg("--meta")
            .arg(self.meta_list())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("aerie shell starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("aerie shell finishes");
        ShellOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).to_string(),
        }
    }

    /// The config file meta `i` reads (with `meta_config`).
    pub fn meta_config_path(&self, i: usize) -> PathBuf {
        let name = if i == 0 { "meta".to_string() } else { format!("meta{i}") };
        self.dir.path().join(format!("{name}.toml"))
    }

    /// Every meta server, as `--meta` takes them.
    pub fn meta_list(&self) -> String {
        self.meta_addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs one shell command with `-e`.
    pub fn shell_exec(&self, command: &str) -> ShellOutput {
        self.shell(&["-e", command], "")
    }

    /// The last lines of every process's log, for failure reports.
    pub fn logs(&self, lines: usize) -> String {
        self.metas
            .iter()
            .chain(&self.replicas)
            .map(|p| format!("---- {} ----\n{}", p.name, p.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster logs at failure:\n{}", self.logs(40));
        }
    }
}
