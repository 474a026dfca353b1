//! Wire messages of every Aerie service, one module per service. Each request type names its response
//! through [`Rpc`]; this crate knows only serde (no actix, tokio or RocksDB), so clients, servers and
//! tools share the exact same types.

pub mod admin;
mod bytes;
pub mod collector;
pub mod data;
pub mod learn;
pub mod meta;
pub mod replica;

use serde::{de::DeserializeOwned, Serialize};

/// A request that can travel between processes. `METHOD` is the stable name it is dispatched by.
pub trait Rpc: Serialize + DeserializeOwned + Send + 'static {
    type Response: Serialize + DeserializeOwned + Send + 'static;
    const METHOD: &'static str;
}

/// Declares `impl Rpc` for a list of `Request => Response` pairs under a service prefix.
#[macro_export]
macro_rules! rpc {
    ($service:literal; $($req:ty => $resp:ty),+ $(,)?) => {
        $(impl $crate::Rpc for $req {
            type Response = $resp;
            const METHOD: &'static str = concat!($service, ".", stringify!($req));
        })+
    };
}
