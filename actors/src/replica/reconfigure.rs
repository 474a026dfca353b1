//! A replica and the meta: a primary whose secondary fails to acknowledge asks the meta to remove it
//! (ballot + 1, then writes go on with the others); a replica that meets a newer ballot than its own
//! asks the meta for the current configuration; a replica whose server lost its lease stops serving.

use super::actor::Replica;
use super::messages::LeaseExpired;
use actix::prelude::*;
use aerie_common::{ErrorCode, NodeAddr, WireResult};
use aerie_proto::meta::{AppInfo, PartitionChange, PartitionConfig, QueryPartition, UpdatePartitionConfig};
use aerie_proto::replica::ReplicaStatus;
use aerie_rpc::RpcError;
use tracing::{info, warn};

impl Replica {
    /// Primary: asks the meta to take `secondary` out of the configuration, unless that would leave
    /// too few replicas to write: then removing it helps nobody, and the write path keeps retrying
    /// (the meta's failure detector removes a node that is really gone).
    pub(super) fn request_removal(&mut self, secondary: NodeAddr, ctx: &mut Context<Self>) {
        if self.meta_request_in_flight || self.status != ReplicaStatus::Primary {
            return;
        }
        let members = self.config.as_ref().map(|c| c.replica_count()).unwrap_or(0);
        if members <= self.options.min_replicas_for_write {
            return;
        }
        self.meta_request_in_flight = true;
        let request = UpdatePartitionConfig {
            gpid: self.gpid,
            ballot: self.ballot,
            requester: self.me,
            change: PartitionChange::RemoveSecondary(secondary),
        };
        info!(gpid = %self.gpid, ballot = self.ballot, %secondary, "asking the meta to remove a secondary that does not acknowledge");
        self.ask_meta(request, ctx);
    }

    /// Sends a configuration request to the meta and adopts the configuration it answers with.
    pub(super) fn ask_meta(&mut self, request: UpdatePartitionConfig, ctx: &mut Context<Self>) {
        let (meta, network, timeout) = (
            self.options.meta.clone(),
            self.network.clone(),
            self.options.rpc_timeout,
        );
        let call = async move { meta.call(&network, request, timeout).await };
        ctx.spawn(call.into_actor(self).map(|answer, act, ctx| {
            act.meta_request_in_flight = false;
            act.adopt_answer(answer, ctx);
        }));
    }

    fn adopt_answer(&mut self, answer: Result<WireResult<PartitionConfig>, RpcError>, ctx: &mut Context<Self>) {
        match answer {
            Ok(Ok(config)) => {
                let app = self.app.clone();
                if let Err(e) = self.apply_config(app, config, ctx) {
                    warn!(gpid = %self.gpid, error = %e, "cannot adopt the meta's configuration");
                }
            }
            Ok(Err(e)) if e.code == ErrorCode::ERR_INVALID_VERSION => self.refresh_config(ctx),
            Ok(Err(e)) => warn!(gpid = %self.gpid, error = %e, "the meta refused the configuration request"),
            Err(e) => {
                warn!(gpid = %self.gpid, error = %e, "the meta could not be reached; the write path keeps retrying")
            }
        }
    }

    /// Fetches the partition's current configuration from the meta and adopts it.
    pub(super) fn refresh_config(&mut self, ctx: &mut Context<Self>) {
        if self.meta_request_in_flight {
            return;
        }
        self.meta_request_in_flight = true;
        let (meta, network, timeout) = (
            self.options.meta.clone(),
            self.network.clone(),
            self.options.rpc_timeout,
        );
        let request = QueryPartition { gpid: self.gpid };
        let call = async move { meta.call(&network, request, timeout).await };
        ctx.spawn(call.into_actor(self).map(|answer, act, ctx| {
            act.meta_request_in_flight = false;
            match answer {
                Ok(Ok((app, config))) => {
                    let app: AppInfo = app;
                    if config.ballot >= act.ballot {
                        if let Err(e) = act.apply_config(app, config, ctx) {
                            warn!(gpid = %act.gpid, error = %e, "cannot adopt the refreshed configuration");
                        }
                    }
                }
                Ok(Err(e)) => warn!(gpid = %act.gpid, error = %e, "cannot refresh the configuration"),
                Err(e) => warn!(gpid = %act.gpid, error = %e, "cannot reach the meta to refresh the configuration"),
            }
        }));
    }
}

impl Handler<LeaseExpired> for Replica {
    type Result = ();

    fn handle(&mut self, _: LeaseExpired, _: &mut Self::Context) {
        if self.status == ReplicaStatus::Inactive {
            return;
        }
        self.serving = false;
        self.set_status(ReplicaStatus::Inactive);
        self.fail_waiters(ErrorCode::ERR_INVALID_STATE, "the replica server lost its lease");
    }
}
