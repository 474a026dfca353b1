//! The replica server's remote commands: `replica.kill_partition` (close replicas that no longer
//! serve, flushing memtables, and keep them closed: the last step before a stop, so that the
//! restart replays little), `flush-log`, `replica.query-progress`, and its part of `server-stat`
//! (replicas per role, learning counts and bytes).

use super::messages::{Close, GetInfo, SyncLog};
use super::stub::ReplicaStub;
use crate::metrics::{LEARN_BYTES, LEARN_COMPLETED, LEARN_ROUNDS, LOG_WRITTEN_BYTES};
use actix::prelude::*;
use aerie_common::Gpid;
use aerie_proto::replica::{ReplicaInfo, ReplicaStatus};
use tracing::info;

/// A `replica.*` command, `flush-log`, or `server-stat`.
#[derive(Message)]
#[rtype(result = "String")]
pub struct ReplicaCommand {
    pub name: String,
    pub args: Vec<String>,
}

/// The commands `ReplicaCommand` understands, with their help.
pub const REPLICA_COMMANDS: &[(&str, &str)] = &[
    (
        "replica.kill_partition",
        "[app_id [pidx]] close replicas that serve no role (memtables flushed) and keep them closed until the server restarts; refused while one is a primary or secondary (migrate_node, downgrade_node first)",
    ),
    ("flush-log", "sync every mutation log to disk"),
    (
        "replica.query-progress",
        "per replica: role, ballot, committed, applied and durable decrees",
    ),
];

fn parse_filter(args: &[String]) -> Result<(Option<u32>, Option<u32>), String> {
    let number = |s: &String| s.parse::<u32>().map_err(|_| format!("ERR: '{s}' is not a number"));
    match args {
        [] => Ok((None, None)),
        [app] => Ok((Some(number(app)?), None)),
        [app, pidx] => Ok((Some(number(app)?), Some(number(pidx)?))),
        _ => Err("ERR: takes [app_id [pidx]]".into()),
    }
}

fn progress_line(info: &ReplicaInfo) -> String {
    format!(
        "{} {} ballot={} committed={} applied={} durable={}",
        info.gpid, info.status, info.ballot, info.last_committed, info.last_applied, info.durable_committed
    )
}

impl ReplicaStub {
    fn kill_partitions(&mut self, args: &[String]) -> Result<ResponseActFuture<Self, String>, String> {
        let (app, pidx) = parse_filter(args)?;
        let matching: Vec<Gpid> = self
            .replica_gpids()
            .into_iter()
            .filter(|g| app.is_none_or(|a| g.app_id == a) && pidx.is_none_or(|p| g.pidx == p))
            .collect();
        let infos: Vec<_> = matching
            .iter()
            .filter_map(|g| self.replica_addr(*g))
            .map(|a| a.send(GetInfo))
            .collect();
        let me = self.me();
        Ok(Box::pin(
            async move { futures::future::join_all(infos).await }
                .into_actor(self)
                .then(move |infos, act, _| {
                    let serving: Vec<String> = infos
                        .into_iter()
                        .flatten()
                        .filter(|i| matches!(i.status, ReplicaStatus::Primary | ReplicaStatus::Secondary))
                        .map(|i| format!("{} ({})", i.gpid, i.status))
                        .collect();
                    if !serving.is_empty() {
                        let refusal = format!(
                            "ERR: {} still serve here; move them away first (migrate_node -n {me}, then downgrade_node -n {me}); nothing closed",
                            serving.join(", ")
                        );
                        return fut::ready(refusal).boxed_local();
                    }
                    let closes: Vec<_> = matching
                        .iter()
                        .filter_map(|g| act.hold_closed(*g))
                        .map(|a| a.send(Close))
                        .collect();
                    let count = closes.len();
                    info!(count, "replica.kill_partition: closing replicas until the server restarts");
                    async move {
                        futures::future::join_all(closes).await;
                        format!("OK, {count} replica(s) closed with memtables flushed; they stay closed until this server restarts")
                    }
                    .into_actor(act)
                    .boxed_local()
                }),
        ))
    }

    fn stat(&self) -> ResponseActFuture<Self, String> {
        let infos = self
            .replica_addrs()
            .into_iter()
            .map(|a| a.send(GetInfo))
            .collect::<Vec<_>>();
        let node = self.me().to_string();
        let per_dir = self
            .replicas_per_data_dir()
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("/");
        Box::pin(
            async move {
                let infos: Vec<ReplicaInfo> = futures::future::join_all(infos).await.into_iter().flatten().collect();
                let count = |status| infos.iter().filter(|i| i.status == status).count();
                let sources = ["cache", "log", "checkpoint"];
                let rounds: u64 = sources.iter().map(|s| LEARN_ROUNDS.with_label_values(&[node.as_str(), s]).get()).sum();
                let bytes: u64 = sources.iter().map(|s| LEARN_BYTES.with_label_values(&[node.as_str(), s]).get()).sum();
                format!(
                    "replica: replicas={}, primaries={}, secondaries={}, learners={}, inactive={}, learn_rounds={rounds}, learn_bytes={bytes}, learn_completed={}, log_bytes={}, replicas_per_data_dir={per_dir}",
                    infos.len(),
                    count(ReplicaStatus::Primary),
                    count(ReplicaStatus::Secondary),
                    count(ReplicaStatus::Learner),
                    count(ReplicaStatus::Inactive),
                    LEARN_COMPLETED.with_label_values(&[&node]).get(),
                    LOG_WRITTEN_BYTES.with_label_values(&[&node]).get(),
                )
            }
            .into_actor(self),
        )
    }
}

impl Handler<ReplicaCommand> for ReplicaStub {
    type Result = ResponseActFuture<Self, String>;

    fn handle(&mut self, command: ReplicaCommand, _: &mut Self::Context) -> Self::Result {
        let reply = |text: String| -> Self::Result { Box::pin(fut::ready(text)) };
        match command.name.as_str() {
            "server-stat" => self.stat(),
            "replica.kill_partition" => self.kill_partitions(&command.args).unwrap_or_else(reply),
            "flush-log" => {
                let syncs: Vec<_> = self.replica_addrs().into_iter().map(|a| a.send(SyncLog)).collect();
                Box::pin(
                    async move {
                        let results = futures::future::join_all(syncs).await;
                        let failed = results.iter().filter(|r| !matches!(r, Ok(Ok(())))).count();
                        match failed {
                            0 => format!("OK, {} log(s) synced", results.len()),
                            n => format!("ERR: {n} of {} logs could not be synced", results.len()),
                        }
                    }
                    .into_actor(self),
                )
            }
            "replica.query-progress" => {
                let infos: Vec<_> = self.replica_addrs().into_iter().map(|a| a.send(GetInfo)).collect();
                Box::pin(
                    async move {
                        let mut infos: Vec<ReplicaInfo> =
                            futures::future::join_all(infos).await.into_iter().flatten().collect();
                        infos.sort_by_key(|i| i.gpid);
                        infos.iter().map(progress_line).collect::<Vec<_>>().join("\n")
                    }
                    .into_actor(self),
                )
            }
            other => reply(format!("ERR: unknown command '{other}'")),
        }
    }
}
