//! An endpoint: the address a server listens on and the handlers it offers, one per request type.
//! Each handler is kept twice: typed, for callers in the same process (no serialization), and behind a
//! byte interface, for frames arriving over TCP.

use crate::error::RemoteFailure;
use crate::frame;
use aerie_common::NodeAddr;
use aerie_proto::Rpc;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type TypedHandler<M> =
    Arc<dyn Fn(M) -> BoxFuture<Result<<M as Rpc>::Response, RemoteFailure>> + Send + Sync>;
pub(crate) type ByteHandler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<Result<Vec<u8>, RemoteFailure>> + Send + Sync>;

pub struct Endpoint {
    addr: NodeAddr,
    typed: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    bytes: HashMap<&'static str, ByteHandler>,
}

impl Endpoint {
    pub fn new(addr: NodeAddr) -> Self {
        Endpoint {
            addr,
            typed: HashMap::new(),
            bytes: HashMap::new(),
        }
    }

    pub fn addr(&self) -> NodeAddr {
        self.addr
    }

    /// Serves `M` with an async function.
    pub fn handle<M, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        M: Rpc,
        F: Fn(M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = M::Response> + Send + 'static,
    {
        self.handle_fallible::<M, _, _>(move |req| {
            let fut = handler(req);
            async move { Ok(fut.await) }
        })
    }

    /// Serves `M` with an async function that may refuse the request at the transport level.
    pub fn handle_fallible<M, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        M: Rpc,
        F: Fn(M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Response, RemoteFailure>> + Send + 'static,
    {
        let typed: TypedHandler<M> = Arc::new(move |req| Box::pin(handler(req)));
        let for_bytes = typed.clone();
        let bytes: ByteHandler = Arc::new(move |body: Vec<u8>| {
            let typed = for_bytes.clone();
            Box::pin(async move {
                let req: M = frame::decode(&body).map_err(RemoteFailure::BadRequest)?;
                let resp = typed(req).await?;
                frame::encode(&resp).map_err(|e| RemoteFailure::Unavailable(format!("cannot encode the response: {e}")))
            })
        });
        self.typed.insert(TypeId::of::<M>(), Box::new(typed));
        self.bytes.insert(M::METHOD, bytes);
        self
    }

    pub(crate) fn typed<M: Rpc>(&self) -> Option<TypedHandler<M>> {
        self.typed
            .get(&TypeId::of::<M>())
            .and_then(|h| h.downcast_ref::<TypedHandler<M>>())
            .cloned()
    }

    /// The byte handler for `method`, with the method's static name (safe to use as a metric label).
    pub(crate) fn by_method(&self, method: &str) -> Option<(&'static str, ByteHandler)> {
        self.bytes.get_key_value(method).map(|(name, h)| (*name, h.clone()))
    }
}
