//! The actix adapter: a request `M` arrives at an actor as the message `Inbound<M>`, whose result is
//! `M::Response`. The wire crate stays free of actix; this is the only place the two meet.

use crate::endpoint::Endpoint;
use crate::error::RemoteFailure;
use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler};
use aerie_proto::Rpc;

/// A request delivered to an actor.
pub struct Inbound<M: Rpc>(pub M);

impl<M: Rpc> actix::Message for Inbound<M> {
    type Result = M::Response;
}

impl Endpoint {
    /// Serves `M` by sending it to an actor.
    pub fn handle_actor<M, A>(&mut self, addr: Addr<A>) -> &mut Self
    where
        M: Rpc,
        A: Actor + Handler<Inbound<M>>,
        A::Context: ToEnvelope<A, Inbound<M>>,
    {
        self.handle_fallible::<M, _, _>(move |req| {
            let addr = addr.clone();
            async move {
                addr.send(Inbound(req))
                    .await
                    .map_err(|e| RemoteFailure::Unavailable(format!("actor stopped: {e}")))
            }
        })
    }
}
