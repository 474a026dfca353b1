//! The simulated replica's storage: an in-memory engine that applies mutations through the same
//! code as RocksDB's (`aerie_storage::apply`), with what a crash keeps (the last flush) apart
//! from what it loses (the "memtable"), and a mutation log with a durable part and writes in flight.

use aerie_common::{Ballot, Decree, WireResult};
use aerie_proto::data::WriteResult;
use aerie_proto::replica::Mutation;
use aerie_storage::apply::{apply_mutations, BaseRead};
use aerie_storage::key::{decode_value, encode_key};
use aerie_storage::{SessionTable, StorageError};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The data of one replica at an applied decree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineState {
    pub records: BTreeMap<Vec<u8>, Vec<u8>>,
    pub sessions: SessionTable,
    pub applied: Decree,
}

impl BaseRead for EngineState {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.records.get(key).cloned())
    }
}

impl EngineState {
    /// Applies consecutive mutations; returns each operation's answer.
    pub fn apply(&mut self, mutations: &[Arc<Mutation>]) -> Vec<Vec<WireResult<WriteResult>>> {
        let Some(last) = mutations.last() else {
            return Vec::new();
        };
        let batch = apply_mutations(self, &self.sessions, mutations).expect("in-memory apply cannot fail");
        for (key, value) in batch.writes {
            match value {
                Some(value) => self.records.insert(key, value),
                None => self.records.remove(&key),
            };
        }
        self.sessions.merge(batch.sessions);
        self.applied = last.decree;
        batch.answers
    }

    pub fn get(&self, hash_key: &[u8], sort_key: &[u8]) -> Option<Vec<u8>> {
        let raw = self.records.get(&encode_key(hash_key, sort_key))?;
        decode_value(raw).map(|(_, value)| value.to_vec())
    }

    /// A digest of the data and the sessions (replicas that applied the same decrees agree).
    pub fn digest(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.records.hash(&mut hasher);
        let mut sessions: Vec<_> = self.sessions.iter().collect();
        sessions.sort_by_key(|(client, _)| **client);
        for (client, session) in sessions {
            client.hash(&mut hasher);
            session.acked_below.hash(&mut hasher);
            session.last_active_secs.hash(&mut hasher);
            format!("{:?}", session.answers).hash(&mut hasher);
        }
        hasher.finish()
    }
}

/// One record of the simulated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Mutation(Arc<Mutation>),
    Committed(Decree),
}

/// A replica's disk: the engine (current and flushed), the log (durable and in flight), and the
/// ballot its manifest records.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub current: EngineState,
    pub flushed: EngineState,
    pub log: Vec<LogEntry>,
    pub manifest_ballot: Ballot,
    /// The manifest's learning flag (see `ReplicaManifest::learning`).
    pub learning: bool,
}

impl Disk {
    /// Flushes the memtable and drops the log records the flushed data covers (the applied decree
    /// is read before the flush, as the real log GC does).
    pub fn flush_and_gc(&mut self) {
        let durable = self.current.applied;
        self.flushed = self.current.clone();
        self.log.retain(|entry| match entry {
            LogEntry::Mutation(m) => m.decree > durable,
            LogEntry::Committed(d) => *d > durable,
        });
    }

    /// What a crash leaves: the flushed data and the durable log.
    pub fn crash(&mut self) {
        self.current = self.flushed.clone();
    }

    /// The logged mutations in log order, and the highest commit marker.
    pub fn replay_input(&self) -> (Vec<Mutation>, Decree) {
        let mut mutations = Vec::new();
        let mut marker = 0;
        for entry in &self.log {
            match entry {
                LogEntry::Mutation(m) => mutations.push((**m).clone()),
                LogEntry::Committed(d) => marker = marker.max(*d),
            }
        }
        (mutations, marker)
    }
}
