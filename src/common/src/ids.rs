//! Identifiers: tables (`AppId`), partitions (`Gpid`), configuration epochs (`Ballot`), log sequence
//! numbers (`Decree`) and nodes (`NodeAddr`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// A table's numeric id, assigned by the meta server and never reused.
pub type AppId = u32;
/// Per-partition configuration epoch; every membership change raises it by exactly one.
pub type Ballot = i64;
/// Per-partition sequence number of a mutation.
pub type Decree = i64;

/// Why an identifier could not be parsed from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("invalid gpid '{0}': expected APP_ID.PARTITION_INDEX, e.g. 3.7")]
    Gpid(String),
    #[error("invalid node address '{0}': expected host:port, e.g. 127.0.0.1:34801")]
    Node(String),
}

/// A partition's global id: `app_id.partition_index`, printed `3.7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gpid {
    pub app_id: AppId,
    pub pidx: u32,
}

impl Gpid {
    pub fn new(app_id: AppId, pidx: u32) -> Self {
        Gpid { app_id, pidx }
    }
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_id, self.pidx)
    }
}

impl FromStr for Gpid {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIdError::Gpid(s.to_string());
        let (app, pidx) = s.split_once('.').ok_or_else(err)?;
        Ok(Gpid {
            app_id: app.trim().parse().map_err(|_| err())?,
            pidx: pidx.trim().parse().map_err(|_| err())?,
        })
    }
}

/// A server's address, `host:port`. Host names are resolved once, when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr(pub SocketAddr);

impl NodeAddr {
    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }

    /// Parses a comma-separated list such as `127.0.0.1:34601,127.0.0.1:34602`.
    pub fn parse_list(s: &str) -> Result<Vec<NodeAddr>, ParseIdError> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect()
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for NodeAddr {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(NodeAddr(addr));
        }
        if !s.contains(':') {
            return Err(ParseIdError::Node(s.to_string()));
        }
        s.to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.find(|a| a.is_ipv4()).or_else(|| s.to_socket_addrs().ok()?.next()))
            .map(NodeAddr)
            .ok_or_else(|| ParseIdError::Node(s.to_string()))
    }
}

impl From<SocketAddr> for NodeAddr {
    fn from(addr: SocketAddr) -> Self {
        NodeAddr(addr)
    }
}

// Addresses travel as text so that meta-store JSON stays readable with zkCli.
impl Serialize for NodeAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpid_round_trips_through_text() {
        let gpid: Gpid = "3.7".parse().unwrap();
        assert_eq!(gpid, Gpid::new(3, 7));
        assert_eq!(gpid.to_string(), "3.7");
        assert!("3".parse::<Gpid>().is_err());
        assert!("a.b".parse::<Gpid>().is_err());
    }

    #[test]
    fn node_addr_parses_lists_and_rejects_garbage() {
        let nodes = NodeAddr::parse_list("127.0.0.1:1, 127.0.0.1:2,").unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].to_string(), "127.0.0.1:2");
        assert!("nonsense".parse::<NodeAddr>().is_err());
        assert!("localhost:34601".parse::<NodeAddr>().is_ok());
    }
}
