//! Requests every process answers, whatever its role.

use aerie_common::WireResult;
use serde::{Deserialize, Serialize};

/// Version, roles and uptime of a process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryServerInfo {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    pub roles: Vec<String>,
    pub uptime_secs: u64,
}

crate::rpc! { "admin";
    QueryServerInfo => WireResult<ServerInfo>,
}

/// Runs a named command of the process's registry (`help` lists them). The reply is short text:
/// `OK`, a value, or `ERR: reason`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteCommand {
    pub name: String,
    pub args: Vec<String>,
}

crate::rpc! { "admin";
    RemoteCommand => String,
}
