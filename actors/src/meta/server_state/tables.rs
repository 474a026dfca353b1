//! Table life cycle: create (placement, one store transaction, wait for replicas), drop, listings.

use super::{err, push_configs, ServerState};
use crate::meta::placement::place_table;
use actix::prelude::*;
use aerie_common::{ErrorCode, Gpid, WireResult};
use aerie_proto::meta::*;
use aerie_rpc::Inbound;
use futures::FutureExt;
use tracing::info;

const MAX_APP_NAME_LEN: usize = 128;

impl ServerState {
    fn validate_create(&self, req: &CreateApp) -> WireResult<()> {
        let name = &req.app_name;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_APP_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !name_ok {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("invalid table name '{name}': use 1 to {MAX_APP_NAME_LEN} of the characters A-Z a-z 0-9 _ . -"),
            ));
        }
        let count = req.partition_count;
        if count == 0 || !count.is_power_of_two() || count > self.params.max_partition_count {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!(
                    "partition count {count} must be a power of two between 1 and {} (meta_server.max_partition_count)",
                    self.params.max_partition_count
                ),
            ));
        }
        if req.replica_count == 0 {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                "replica count must be at least 1",
            ));
        }
        if self.find_available(name).is_some() {
            return Err(err(ErrorCode::ERR_APP_EXIST, format!("table '{name}' already exists")));
        }
        Ok(())
    }
}

impl Handler<Inbound<CreateApp>> for ServerState {
    type Result = ResponseFuture<WireResult<CreateAppResponse>>;

    fn handle(&mut self, Inbound(req): Inbound<CreateApp>, ctx: &mut Self::Context) -> Self::Result {
        let planned = self
            .check_loaded()
            .and_then(|_| self.check_not_blind())
            .and_then(|_| self.validate_create(&req))
            .and_then(|_| {
                let loads = self.loads(None);
                // A node in maintenance receives no new replica.
                let maintenance = self.maintenance_now();
                let alive = self
                    .alive_nodes()
                    .filter(|n| !maintenance.contains(n))
                    .map(|n| (n, loads.get(&n).copied().unwrap_or_default()))
                    .collect();
                place_table(&alive, req.partition_count, req.replica_count).map_err(|e| {
                    let note = match maintenance.len() {
                        0 => String::new(),
                        n => format!(" ({n} node(s) in maintenance take none)"),
                    };
                    err(ErrorCode::ERR_NOT_ENOUGH_MEMBER, format!("{e}{note}"))
                })
            });
        let placements = match planned {
            Ok(placements) => placements,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let app_id = self.next_app_id;
        let info = AppInfo {
            app_id,
            app_name: req.app_name.clone(),
            status: AppStatus::Available,
            partition_count: req.partition_count,
            max_replica_count: req.replica_count,
            create_time_secs: self.params.clock.wall_secs(),
            drop_time_secs: None,
            envs: req.envs.clone(),
        };
        let partitions: Vec<PartitionConfig> = placements
            .into_iter()
            .enumerate()
            .map(|(pidx, placement)| PartitionConfig {
                gpid: Gpid::new(app_id, pidx as u32),
                ballot: 1,
                primary: Some(placement.primary),
                secondaries: placement.secondaries,
                max_replica_count: req.replica_count,
                last_drops: Vec::new(),
                last_committed_decree: 0,
            })
            .collect();
        let ops = self.layout.create_app_ops(&info, &partitions, app_id + 1);
        let app = AppState { info, partitions };
        let applied = self.persist_then(ctx, ops, move |act, _| {
            info!(app_id, name = %app.info.app_name, partitions = app.partitions.len(), "table created");
            act.next_app_id = app_id + 1;
            let pushes = app
                .partitions
                .iter()
                .flat_map(|p| act.pushes_for_partition(&app.info, p, []))
                .collect::<Vec<_>>();
            let info = app.info.clone();
            act.apps.insert(app_id, app);
            (info, pushes)
        });
        let (network, wait) = (self.params.network.clone(), self.params.create_wait_ready);
        Box::pin(async move {
            let (app, pushes) = applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))??;
            let ready_partitions = push_configs(network, pushes, wait).await;
            Ok(CreateAppResponse { app, ready_partitions })
        })
    }
}

impl Handler<Inbound<DropApp>> for ServerState {
    type Result = ResponseFuture<WireResult<()>>;

    fn handle(&mut self, Inbound(req): Inbound<DropApp>, ctx: &mut Self::Context) -> Self::Result {
        let found = self.check_loaded().and_then(|_| self.check_not_blind()).and_then(|_| {
            self.find_available(&req.app_name).cloned().ok_or_else(|| {
                err(
                    ErrorCode::ERR_APP_NOT_EXIST,
                    format!("table '{}' does not exist", req.app_name),
                )
            })
        });
        let mut app = match found {
            Ok(app) => app,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        app.info.status = AppStatus::Dropped;
        app.info.drop_time_secs = Some(self.params.clock.wall_secs());
        let changed = self.store_app_status(app, ctx);
        Box::pin(async move { changed.await.map(|_| ()) })
    }
}

impl ServerState {
    /// The dropped table `req` brings back, as it will be: checked, not changed yet.
    fn recalled(&self, req: &RecallApp) -> WireResult<AppState> {
        self.check_loaded()?;
        self.check_not_blind()?;
        let app = self.apps.get(&req.app_id).ok_or_else(|| {
            err(
                ErrorCode::ERR_APP_NOT_EXIST,
                format!(
                    "no table has app id {} (ls -a lists dropped tables with their ids)",
                    req.app_id
                ),
            )
        })?;
        if app.info.status != AppStatus::Dropped {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("table {} (app id {}) is not dropped", app.info.app_name, req.app_id),
            ));
        }
        let dropped_for = self
            .params
            .clock
            .wall_secs()
            .saturating_sub(app.info.drop_time_secs.unwrap_or(0));
        let hold = self.params.hold_dropped.as_secs();
        if dropped_for > hold {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!(
                    "table {} was dropped {dropped_for} s ago, longer than meta_server.hold_seconds_for_dropped_app ({hold} s): its replicas may be gone",
                    app.info.app_name
                ),
            ));
        }
        let name = req.new_name.clone().unwrap_or_else(|| app.info.app_name.clone());
        if self.find_available(&name).is_some() {
            return Err(err(
                ErrorCode::ERR_APP_EXIST,
                format!("a table named {name} exists; recall {} NEW_NAME", req.app_id),
            ));
        }
        let mut app = app.clone();
        app.info.app_name = name;
        app.info.status = AppStatus::Available;
        app.info.drop_time_secs = None;
        Ok(app)
    }
}

impl Handler<Inbound<RecallApp>> for ServerState {
    type Result = ResponseFuture<WireResult<AppInfo>>;

    /// The partitions keep the configurations they had when the table was dropped; the replica
    /// servers named there open the replicas they set aside.
    fn handle(&mut self, Inbound(req): Inbound<RecallApp>, ctx: &mut Self::Context) -> Self::Result {
        let app = match self.recalled(&req) {
            Ok(app) => app,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        Box::pin(self.store_app_status(app, ctx))
    }
}

impl ServerState {
    /// Stores a table whose status changed (dropped or recalled), then tells the replica servers
    /// of its partitions (those that miss it learn it from their next config sync).
    fn store_app_status(
        &mut self,
        app: AppState,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = WireResult<AppInfo>> + 'static {
        let ops = vec![self.layout.set_app_op(&app.info)];
        let applied = self.persist_then(ctx, ops, move |act, ctx| {
            info!(app_id = app.info.app_id, name = %app.info.app_name, status = %app.info.status, "table status changed");
            let pushes = app
                .partitions
                .iter()
                .flat_map(|p| act.pushes_for_partition(&app.info, p, []))
                .collect::<Vec<_>>();
            let info = app.info.clone();
            act.adding.retain(|gpid, _| gpid.app_id != info.app_id);
            act.data_bytes.retain(|gpid, _| gpid.app_id != info.app_id);
            act.apps.insert(info.app_id, app);
            act.refresh_metrics();
            act.schedule_cure(ctx);
            (info, pushes)
        });
        let (network, timeout) = (self.params.network.clone(), self.params.rpc_timeout);
        async move {
            let (info, pushes) = applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))??;
            actix::spawn(push_configs(network, pushes, timeout).map(|_| ()));
            Ok(info)
        }
    }
}

impl Handler<Inbound<ListApps>> for ServerState {
    type Result = WireResult<Vec<AppState>>;

    fn handle(&mut self, Inbound(req): Inbound<ListApps>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        Ok(self
            .apps
            .values()
            .filter(|a| req.include_dropped || a.info.status == AppStatus::Available)
            .cloned()
            .collect())
    }
}

impl Handler<Inbound<QueryConfig>> for ServerState {
    type Result = WireResult<AppState>;

    fn handle(&mut self, Inbound(req): Inbound<QueryConfig>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        self.find_available(&req.app_name).cloned().ok_or_else(|| {
            err(
                ErrorCode::ERR_APP_NOT_EXIST,
                format!("table '{}' does not exist", req.app_name),
            )
        })
    }
}

impl Handler<Inbound<QueryPartition>> for ServerState {
    type Result = WireResult<(AppInfo, PartitionConfig)>;

    fn handle(&mut self, Inbound(req): Inbound<QueryPartition>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        self.partition(req.gpid)
            .map(|(app, config)| (app.clone(), config.clone()))
            .ok_or_else(|| {
                err(
                    ErrorCode::ERR_OBJECT_NOT_FOUND,
                    format!("partition {} does not exist", req.gpid),
                )
            })
    }
}
