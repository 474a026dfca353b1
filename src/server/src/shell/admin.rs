//! Cluster and table listings: `ls`, `app`, `nodes`, `cluster_info`, `create`, `drop`.

use super::commands::{NodeFilter, OutputArgs};
use super::report::Report;
use super::Shell;
use aerie_common::time_fmt::format_unix_secs;
use aerie_common::{MetaLevel, NodeAddr};
use aerie_proto::meta::{AppState, HealthCounts, NodeMaintenance, NodeStatus, Propose};
use std::collections::BTreeMap;

/// Renders a report to the screen or, with `-o`, to a file.
pub fn emit(report: &Report, out: &OutputArgs) -> Result<String, String> {
    let text = report.render(out.json);
    match &out.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(format!("output written to {}\n", path.display()))
        }
        None => Ok(text),
    }
}

fn join_nodes(nodes: &[NodeAddr]) -> String {
    format!(
        "[{}]",
        nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
    )
}

impl Shell {
    pub(super) fn create(&mut self, name: &str, partitions: u32, replicas: u32) -> Result<String, String> {
        let created = self.block(self.client.create_table(name, partitions, replicas))?;
        let mut text = format!(
            "create app \"{name}\" succeed, app_id = {}, partition_count = {partitions}, replica_count = {replicas}\n",
            created.app.app_id
        );
        if created.ready_partitions < partitions {
            text.push_str(&format!(
                "warning: {} of {partitions} partitions confirmed serving so far; check with 'app {name} -d'\n",
                created.ready_partitions
            ));
        }
        Ok(text)
    }

    pub(super) fn drop_table(&mut self, name: &str) -> Result<String, String> {
        self.block(self.client.drop_table(name))?;
        if self.current_table.as_ref().is_some_and(|t| t.app().app_name == name) {
            self.current_table = None;
        }
        Ok(format!("drop app {name} succeed\n"))
    }

    pub(super) fn recall(&mut self, app_id: u32, new_name: Option<String>) -> Result<String, String> {
        let info = self.block(self.client.meta(aerie_proto::meta::RecallApp { app_id, new_name }))?;
        Ok(format!(
            "recall app {} (app id {app_id}) succeed; its {} partitions reopen from the replicas set aside at the drop\n",
            info.app_name, info.partition_count
        ))
    }

    pub(super) fn ls(&mut self, detailed: bool, all: bool, out: &OutputArgs) -> Result<String, String> {
        let apps = self.block(self.client.list_tables(all))?;
        let mut report = Report::default();
        let rows = apps
            .iter()
            .map(|a| {
                vec![
                    a.info.app_id.to_string(),
                    a.info.status.to_string(),
                    a.info.app_name.clone(),
                    a.info.partition_count.to_string(),
                    a.info.max_replica_count.to_string(),
                    format_unix_secs(a.info.create_time_secs),
                    a.info
                        .drop_time_secs
                        .map(format_unix_secs)
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        report.table(
            "general_info",
            &[
                "app_id",
                "status",
                "app_name",
                "partition_count",
                "replica_count",
                "create_time",
                "drop_time",
            ],
            rows,
        );
        let mut summary = vec![("total_app_count", apps.len().to_string())];
        if detailed {
            let healths: Vec<(&AppState, HealthCounts)> =
                apps.iter().map(|a| (a, HealthCounts::of(&a.partitions))).collect();
            let rows = healths
                .iter()
                .map(|(a, h)| {
                    vec![
                        a.info.app_id.to_string(),
                        a.info.app_name.clone(),
                        a.info.partition_count.to_string(),
                        h.fully_healthy.to_string(),
                        h.unhealthy.to_string(),
                        h.write_unhealthy.to_string(),
                        h.read_unhealthy.to_string(),
                    ]
                })
                .collect();
            report.table(
                "healthy_info",
                &[
                    "app_id",
                    "app_name",
                    "partition_count",
                    "fully_healthy",
                    "unhealthy",
                    "write_unhealthy",
                    "read_unhealthy",
                ],
                rows,
            );
            let count = |f: fn(&HealthCounts) -> bool| healths.iter().filter(|(_, h)| f(h)).count().to_string();
            summary.push(("fully_healthy_app_count", count(|h| h.unhealthy == 0)));
            summary.push(("unhealthy_app_count", count(|h| h.unhealthy > 0)));
            summary.push(("write_unhealthy_app_count", count(|h| h.write_unhealthy > 0)));
            summary.push(("read_unhealthy_app_count", count(|h| h.read_unhealthy > 0)));
        }
        report.pairs("summary", summary);
        emit(&report, out)
    }

    pub(super) fn app(&mut self, name: &str, detailed: bool, out: &OutputArgs) -> Result<String, String> {
        let app = self.block(self.client.query_config(name))?;
        let mut report = Report::default();
        report.pairs(
            "general",
            vec![
                ("app_name", app.info.app_name.clone()),
                ("app_id", app.info.app_id.to_string()),
                ("partition_count", app.info.partition_count.to_string()),
                ("max_replica_count", app.info.max_replica_count.to_string()),
            ],
        );
        if detailed {
            let rows = app
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.gpid.pidx.to_string(),
                        p.ballot.to_string(),
                        format!("{}/{}", p.replica_count(), p.max_replica_count),
                        p.primary.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                        join_nodes(&p.secondaries),
                    ]
                })
                .collect();
            report.table(
                "replicas",
                &["pidx", "ballot", "replica_count", "primary", "secondaries"],
                rows,
            );

            let mut per_node: BTreeMap<NodeAddr, (u32, u32)> = BTreeMap::new();
            for p in &app.partitions {
                if let Some(primary) = p.primary {
                    per_node.entry(primary).or_default().0 += 1;
                }
                for s in &p.secondaries {
                    per_node.entry(*s).or_default().1 += 1;
                }
            }
            let (mut total_p, mut total_s) = (0, 0);
            let mut rows: Vec<Vec<String>> = per_node
                .iter()
                .map(|(node, (p, s))| {
                    total_p += p;
                    total_s += s;
                    vec![node.to_string(), p.to_string(), s.to_string(), (p + s).to_string()]
                })
                .collect();
            rows.push(vec![
                String::new(),
                total_p.to_string(),
                total_s.to_string(),
                (total_p + total_s).to_string(),
            ]);
            report.table("nodes", &["node", "primary", "secondary", "total"], rows);

            let health = HealthCounts::of(&app.partitions);
            report.pairs(
                "healthy",
                vec![
                    ("fully_healthy_partition_count", health.fully_healthy.to_string()),
                    ("unhealthy_partition_count", health.unhealthy.to_string()),
                    ("write_unhealthy_partition_count", health.write_unhealthy.to_string()),
                    ("read_unhealthy_partition_count", health.read_unhealthy.to_string()),
                ],
            );
        }
        emit(&report, out)
    }

    pub(super) fn node_maintenance(&mut self, node: &str, on: bool, seconds: Option<u64>) -> Result<String, String> {
        let node: NodeAddr = node.parse().map_err(|e: aerie_common::ParseIdError| e.to_string())?;
        let until = self.block(self.client.meta(NodeMaintenance { node, on, seconds }))?;
        Ok(match until {
            Some(until) => format!(
                "{node} is in maintenance for the next {}: no new replica goes to it, and its replicas wait for it while it is down (node_maintenance -n {node} --off ends it)\n",
                duration(until.saturating_sub(aerie_common::clock::wall_secs_now()))
            ),
            None => format!("{node} is out of maintenance; the normal cure applies to its replicas\n"),
        })
    }

    pub(super) fn nodes(
        &mut self,
        detailed: bool,
        filter: Option<NodeFilter>,
        out: &OutputArgs,
    ) -> Result<String, String> {
        let nodes = self.block(self.client.list_nodes())?;
        let alive = nodes.iter().filter(|n| n.status == NodeStatus::Alive).count();
        let shown = nodes.iter().filter(|n| match filter {
            Some(NodeFilter::Alive) => n.status == NodeStatus::Alive,
            Some(NodeFilter::Unalive) => n.status == NodeStatus::Unalive,
            None => true,
        });
        let mut report = Report::default();
        if detailed {
            let rows = shown
                .map(|n| {
                    vec![
                        n.address.to_string(),
                        n.status.to_string(),
                        (n.primary_count + n.secondary_count).to_string(),
                        n.primary_count.to_string(),
                        n.secondary_count.to_string(),
                        maintenance_left(n.maintenance_until_secs),
                    ]
                })
                .collect();
            report.table(
                "details",
                &[
                    "address",
                    "status",
                    "replica_count",
                    "primary_count",
                    "secondary_count",
                    "maintenance",
                ],
                rows,
            );
        } else {
            let rows = shown
                .map(|n| vec![n.address.to_string(), n.status.to_string()])
                .collect();
            report.table("details", &["address", "status"], rows);
        }
        report.pairs(
            "summary",
            vec![
                ("total_node_count", nodes.len().to_string()),
                ("alive_node_count", alive.to_string()),
                ("unalive_node_count", (nodes.len() - alive).to_string()),
            ],
        );
        emit(&report, out)
    }

    pub(super) fn cluster_info(&mut self, out: &OutputArgs) -> Result<String, String> {
        let info = self.block(self.client.cluster_info())?;
        let mut report = Report::default();
        report.pairs(
            "cluster_info",
            vec![
                (
                    "meta_servers",
                    info.meta_servers
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                ("primary_meta_server", info.primary_meta_server.to_string()),
                ("meta_store", info.meta_store),
                ("meta_store_status", info.meta_store_status),
                ("zookeeper_hosts", info.zookeeper_hosts),
                ("zookeeper_root", info.zookeeper_root),
                ("meta_function_level", info.meta_function_level),
                ("balance_operation_count", info.balance_operation_count.to_string()),
                (
                    "primary_replica_count_stddev",
                    format!("{:.2}", info.primary_replica_count_stddev),
                ),
                (
                    "total_replica_count_stddev",
                    format!("{:.2}", info.total_replica_count_stddev),
                ),
                ("cluster_name", info.cluster_name),
            ],
        );
        emit(&report, out)
    }
}

impl Shell {
    pub(super) fn get_meta_level(&mut self) -> Result<String, String> {
        let info = self.block(self.client.meta_level())?;
        let mut text = format!("current meta level is {}\n", info.stored);
        if let Some(reason) = info.reason {
            text.push_str(&format!("level in force is {}: {reason}\n", info.effective));
        }
        Ok(text)
    }

    pub(super) fn set_meta_level(&mut self, level: &str) -> Result<String, String> {
        let level: MetaLevel = level.parse()?;
        let old = self.block(self.client.set_meta_level(level))?;
        Ok(format!("control meta level ok, the old level is {old}\n"))
    }
}

impl Shell {
    pub(super) fn propose(
        &mut self,
        force: bool,
        gpid: &str,
        kind: &str,
        target: &str,
        node: &str,
    ) -> Result<String, String> {
        let proposal = Propose {
            gpid: gpid.parse().map_err(|e: aerie_common::ParseIdError| e.to_string())?,
            kind: kind.parse()?,
            target: target.parse().map_err(|e: aerie_common::ParseIdError| e.to_string())?,
            node: node.parse().map_err(|e: aerie_common::ParseIdError| e.to_string())?,
            force,
        };
        match self.block(self.client.propose(proposal)) {
            Ok(()) => Ok("send proposal response: ERR_OK\n".into()),
            Err(e) => Err(format!("send proposal response: {e}")),
        }
    }

    pub(super) fn ddd_diagnose(&mut self, gpid: Option<&str>, out: &OutputArgs) -> Result<String, String> {
        let gpid = gpid
            .map(|g| g.parse().map_err(|e: aerie_common::ParseIdError| e.to_string()))
            .transpose()?;
        let partitions = self.block(self.client.ddd_diagnose(gpid))?;
        let rows = partitions
            .iter()
            .map(|p| {
                let dropped = p
                    .dropped
                    .iter()
                    .map(|d| {
                        let state = match d.reported {
                            Some((ballot, committed, prepared)) => format!("{ballot}/{committed}/{prepared}"),
                            None => "-".into(),
                        };
                        format!("{}({},{state})", d.node, if d.alive { "alive" } else { "dead" })
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![
                    p.gpid.to_string(),
                    p.ballot.to_string(),
                    if dropped.is_empty() { "-".into() } else { dropped },
                    p.recommended_primary
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    p.state.clone(),
                ]
            })
            .collect();
        let mut report = Report::default();
        report
            .table(
                "ddd_partitions",
                &[
                    "gpid",
                    "ballot",
                    "last_drops(node(alive,ballot/committed/prepared))",
                    "recommended_primary",
                    "state",
                ],
                rows,
            )
            .pairs("summary", vec![("ddd_partition_count", partitions.len().to_string())]);
        emit(&report, out)
    }
}

/// "-" or the time a maintenance has left ("12m 5s left").
fn maintenance_left(until_secs: Option<u64>) -> String {
    let Some(until) = until_secs else {
        return "-".to_string();
    };
    format!(
        "{} left",
        duration(until.saturating_sub(aerie_common::clock::wall_secs_now()))
    )
}

fn duration(secs: u64) -> String {
    format!("{}m {}s", secs / 60, secs % 60)
}
