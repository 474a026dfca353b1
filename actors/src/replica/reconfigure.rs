//! A replica and the meta: the core's configuration requests (remove a secondary that does not
//! acknowledge, upgrade a learner that caught up) and configuration refreshes (a newer ballot was
//! seen), carried out over the network, their answers fed back to the core.

use super::actor::Replica;
use super::core::MetaAnswer;
use actix::prelude::*;
use aerie_common::{clock::wall_secs_now, ErrorCode};
use aerie_proto::meta::{PartitionChange, QueryPartition, UpdatePartitionConfig};
use tracing::{info, warn};

impl Replica {
    /// Sends a configuration request to the meta at the current ballot.
    pub(super) fn ask_meta(&mut self, change: PartitionChange, ctx: &mut Context<Self>) {
        let request = UpdatePartitionConfig {
            gpid: self.gpid,
            ballot: self.core.ballot(),
            requester: self.me,
            change,
        };
        info!(gpid = %self.gpid, ballot = self.core.ballot(), ?change, "asking the meta for a configuration change");
        let (meta, network, timeout) = (
            self.options.meta.clone(),
            self.network.clone(),
            self.options.rpc_timeout,
        );
        let call = async move { meta.call(&network, request, timeout).await };
        ctx.spawn(call.into_actor(self).map(|answer, act, ctx| {
            let answer = match answer {
                Ok(Ok(config)) => MetaAnswer::Config(config),
                Ok(Err(e)) if e.code == ErrorCode::ERR_INVALID_VERSION => MetaAnswer::Stale,
                Ok(Err(e)) if e.code == ErrorCode::ERR_FORWARD_TO_OTHERS || e.code == ErrorCode::ERR_SERVICE_NOT_ACTIVE => {
                    warn!(gpid = %act.gpid, error = %e, "no meta leader took the configuration request");
                    MetaAnswer::Refused
                }
                Ok(Err(e)) => {
                    warn!(gpid = %act.gpid, error = %e, "the meta refused the configuration request");
                    MetaAnswer::Refused
                }
                Err(e) => {
                    warn!(gpid = %act.gpid, error = %e, "no answer from the meta; the change may or may not have been made");
                    MetaAnswer::Unknown
                }
            };
            let effects = act.core.meta_answered(answer, wall_secs_now());
            act.run(effects, ctx);
        }));
    }

    /// Fetches the partition's current configuration from the meta and hands it to the core.
    pub(super) fn refresh_config(&mut self, ctx: &mut Context<Self>) {
        let (meta, network, timeout) = (
            self.options.meta.clone(),
            self.network.clone(),
            self.options.rpc_timeout,
        );
        let request = QueryPartition { gpid: self.gpid };
        let call = async move { meta.call(&network, request, timeout).await };
        ctx.spawn(call.into_actor(self).map(|answer, act, ctx| {
            let config = match answer {
                Ok(Ok((app, config))) => {
                    act.app = app;
                    Some(config)
                }
                Ok(Err(e)) => {
                    warn!(gpid = %act.gpid, error = %e, "cannot refresh the configuration");
                    None
                }
                Err(e) => {
                    warn!(gpid = %act.gpid, error = %e, "cannot reach the meta to refresh the configuration");
                    None
                }
            };
            let effects = act.core.config_refreshed(config, wall_secs_now());
            act.run(effects, ctx);
        }));
    }
}
