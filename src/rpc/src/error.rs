//! Errors of a call, as seen by the caller.

use aerie_common::{ErrorCode, NodeAddr, WireError};
use serde::{Deserialize, Serialize};

/// Why a server could not run a request (sent back in place of a response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteFailure {
    #[error("the server has no handler for '{0}'")]
    UnknownMethod(String),
    #[error("the request's deadline passed before it completed")]
    DeadlineExceeded,
    #[error("the server could not decode the request: {0}")]
    BadRequest(String),
    #[error("the server is not able to handle it now: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("{method} to {to} timed out after {after_ms} ms")]
    Timeout {
        method: &'static str,
        to: NodeAddr,
        after_ms: u64,
    },
    #[error("cannot connect to {to}: {reason}")]
    Connect { to: NodeAddr, reason: String },
    #[error("connection to {to} lost: {reason}")]
    ConnectionLost { to: NodeAddr, reason: String },
    #[error("{to} failed {method}: {failure}")]
    Remote {
        method: &'static str,
        to: NodeAddr,
        failure: RemoteFailure,
    },
    #[error("encoding error: {0}")]
    Codec(String),
    #[error("{method} to {to} dropped by a fault filter")]
    Blocked { method: &'static str, to: NodeAddr },
}

impl RpcError {
    /// `method` to `to` got no answer within `after`.
    pub fn timeout(method: &'static str, to: NodeAddr, after: std::time::Duration) -> Self {
        RpcError::Timeout {
            method,
            to,
            after_ms: after.as_millis() as u64,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            RpcError::Timeout { .. } => ErrorCode::ERR_TIMEOUT,
            RpcError::Connect { .. } | RpcError::ConnectionLost { .. } | RpcError::Blocked { .. } => {
                ErrorCode::ERR_NETWORK_FAILURE
            }
            RpcError::Remote { failure, .. } => match failure {
                RemoteFailure::DeadlineExceeded => ErrorCode::ERR_TIMEOUT,
                RemoteFailure::Unavailable(_) => ErrorCode::ERR_BUSY,
                RemoteFailure::UnknownMethod(_) | RemoteFailure::BadRequest(_) => ErrorCode::ERR_INVALID_PARAMETERS,
            },
            RpcError::Codec(_) => ErrorCode::ERR_INVALID_DATA,
        }
    }
}

impl From<RpcError> for WireError {
    fn from(err: RpcError) -> Self {
        WireError::new(err.code(), err.to_string())
    }
}
