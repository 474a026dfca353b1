//! Client sessions: what makes a retried write take effect once (the way Raft client sessions do).
//!
//! Every write a client sends carries its session (`client`), a sequence number (`seq`) and the
//! point below which the client has all its answers (`acked_below`). When a mutation is applied,
//! each operation with a request is first admitted against its session:
//!
//! ```text
//!  seq answered before  ─► Done(first answer): nothing applied again
//!  seq < acked_below    ─► Stale: the client has its answer (or gave up); nothing applied
//!  otherwise            ─► Fresh: applied, and its answer remembered under seq
//! ```
//!
//! The table is part of the replicated state: it is changed only by applying mutations, in decree
//! order, using nothing but what the mutations carry (their timestamps included), so every replica
//! that applied the same decrees holds the same table. It is written in the same RocksDB batch as
//! the data it describes, and a checkpoint carries it to a learner.
//!
//! Bounds: answers below `acked_below` are forgotten; a session keeps at most
//! [`MAX_ANSWERS_PER_SESSION`] answers (beyond that the oldest is forgotten and counts as stale);
//! a session silent for [`SESSION_TTL_SECS`] (by mutation timestamps) is dropped, checked every
//! [`SWEEP_EVERY_SECS`].

use aerie_common::WireResult;
use aerie_proto::data::WriteResult;
use aerie_proto::replica::ClientRequest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A session silent this long (mutation time) is forgotten. Far longer than any client retries.
pub const SESSION_TTL_SECS: u64 = 300;
/// Answers a session keeps at most (about the writes one client has in flight to one partition).
pub const MAX_ANSWERS_PER_SESSION: usize = 1024;
/// How often (mutation time) silent sessions are looked for.
pub const SWEEP_EVERY_SECS: u64 = 60;

/// One client's session, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub acked_below: u64,
    pub last_active_secs: u64,
    pub answers: BTreeMap<u64, WireResult<WriteResult>>,
}

/// What applying a request should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Not seen before: apply it.
    Fresh,
    /// Applied before: answer this, apply nothing.
    Done(WireResult<WriteResult>),
    /// Older than what the client still waits for: apply nothing.
    Stale,
}

/// Every session of one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTable {
    sessions: HashMap<u64, Session>,
    last_sweep_secs: u64,
}

/// The sessions one batch of mutations changed (`None`: dropped), not yet part of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChanges {
    pub sessions: BTreeMap<u64, Option<Session>>,
    pub last_sweep_secs: Option<u64>,
}

impl SessionChanges {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.last_sweep_secs.is_none()
    }
}

fn admit(session: Option<&Session>, request: &ClientRequest) -> Admission {
    match session {
        Some(s) => match s.answers.get(&request.seq) {
            Some(answer) => Admission::Done(answer.clone()),
            None if request.seq < s.acked_below => Admission::Stale,
            None => Admission::Fresh,
        },
        None => Admission::Fresh,
    }
}

impl SessionTable {
    pub fn new(sessions: HashMap<u64, Session>, last_sweep_secs: u64) -> Self {
        SessionTable {
            sessions,
            last_sweep_secs,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn last_sweep_secs(&self) -> u64 {
        self.last_sweep_secs
    }

    /// Whether `request` was applied (and what it answered), as the table stands.
    pub fn lookup(&self, request: &ClientRequest) -> Admission {
        admit(self.sessions.get(&request.client), request)
    }

    /// Makes a batch's changes part of the table (once they are durable).
    pub fn merge(&mut self, changes: SessionChanges) {
        for (client, session) in changes.sessions {
            match session {
                Some(session) => self.sessions.insert(client, session),
                None => self.sessions.remove(&client),
            };
        }
        if let Some(at) = changes.last_sweep_secs {
            self.last_sweep_secs = at;
        }
    }

    /// Every session, for a digest or a copy.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Session)> {
        self.sessions.iter()
    }
}

/// The table as one batch sees it: the stored table under the batch's own changes.
pub struct SessionBatch<'a> {
    table: &'a SessionTable,
    pub changes: SessionChanges,
}

impl<'a> SessionBatch<'a> {
    pub fn new(table: &'a SessionTable) -> Self {
        SessionBatch {
            table,
            changes: SessionChanges::default(),
        }
    }

    fn current(&self, client: u64) -> Option<&Session> {
        match self.changes.sessions.get(&client) {
            Some(changed) => changed.as_ref(),
            None => self.table.sessions.get(&client),
        }
    }

    pub fn admit(&self, request: &ClientRequest) -> Admission {
        admit(self.current(request.client), request)
    }

    /// Remembers the answer of a request that was just applied at mutation time `now_secs`.
    pub fn record(&mut self, request: &ClientRequest, answer: WireResult<WriteResult>, now_secs: u64) {
        // The batch's own copy of the session: cloned from the table once per batch, not per write.
        let table = self.table;
        let session = self
            .changes
            .sessions
            .entry(request.client)
            .or_insert_with(|| table.sessions.get(&request.client).cloned())
            .get_or_insert_with(Session::default);
        session.acked_below = session.acked_below.max(request.acked_below);
        let keep_from = session.acked_below;
        session.answers.retain(|seq, _| *seq >= keep_from);
        session.answers.insert(request.seq, answer);
        while session.answers.len() > MAX_ANSWERS_PER_SESSION {
            let (oldest, _) = session.answers.pop_first().expect("not empty");
            session.acked_below = session.acked_below.max(oldest + 1);
        }
        session.last_active_secs = session.last_active_secs.max(now_secs);
    }

    /// Drops sessions silent for the TTL, at most once per sweep interval of mutation time.
    pub fn sweep(&mut self, now_secs: u64) {
        let last = self.changes.last_sweep_secs.unwrap_or(self.table.last_sweep_secs);
        if now_secs < last + SWEEP_EVERY_SECS {
            return;
        }
        let silent = |s: &Session| s.last_active_secs + SESSION_TTL_SECS < now_secs;
        let mut expired: Vec<u64> = self
            .table
            .sessions
            .iter()
            .filter(|(client, s)| !self.changes.sessions.contains_key(client) && silent(s))
            .map(|(client, _)| *client)
            .collect();
        expired.extend(
            self.changes
                .sessions
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(silent))
                .map(|(client, _)| *client),
        );
        for client in expired {
            self.changes.sessions.insert(client, None);
        }
        self.changes.last_sweep_secs = Some(now_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::{ErrorCode, WireError};

    fn request(client: u64, seq: u64, acked_below: u64) -> ClientRequest {
        ClientRequest {
            client,
            seq,
            acked_below,
        }
    }

    fn apply(table: &mut SessionTable, req: ClientRequest, answer: WireResult<WriteResult>, now: u64) -> Admission {
        let mut batch = SessionBatch::new(table);
        batch.sweep(now);
        let admission = batch.admit(&req);
        if admission == Admission::Fresh {
            batch.record(&req, answer, now);
        }
        let changes = batch.changes;
        table.merge(changes);
        admission
    }

    #[test]
    fn a_retry_gets_the_first_answer_and_applies_nothing() {
        let mut table = SessionTable::default();
        let first = Ok(WriteResult::Incremented { new_value: 5 });
        assert_eq!(
            apply(&mut table, request(1, 7, 0), first.clone(), 100),
            Admission::Fresh
        );
        assert_eq!(table.lookup(&request(1, 7, 0)), Admission::Done(first.clone()));
        assert_eq!(
            apply(&mut table, request(1, 7, 0), Ok(WriteResult::Done), 101),
            Admission::Done(first)
        );
        assert_eq!(
            table.lookup(&request(2, 7, 0)),
            Admission::Fresh,
            "sessions are separate"
        );
    }

    #[test]
    fn errors_are_answers_too() {
        let mut table = SessionTable::default();
        let failed = Err(WireError::new(ErrorCode::ERR_INVALID_PARAMETERS, "not an integer"));
        apply(&mut table, request(1, 1, 0), failed.clone(), 100);
        assert_eq!(table.lookup(&request(1, 1, 0)), Admission::Done(failed));
    }

    #[test]
    fn answers_below_the_acknowledged_point_are_forgotten_and_their_retries_are_stale() {
        let mut table = SessionTable::default();
        for seq in 1..=3 {
            apply(&mut table, request(1, seq, 1), Ok(WriteResult::Done), 100);
        }
        // The client now has every answer below 3.
        apply(&mut table, request(1, 4, 3), Ok(WriteResult::Done), 100);
        let session = table.iter().next().unwrap().1;
        assert_eq!(session.answers.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(table.lookup(&request(1, 2, 3)), Admission::Stale);
        assert_eq!(table.lookup(&request(1, 3, 3)), Admission::Done(Ok(WriteResult::Done)));
    }

    #[test]
    fn a_session_keeps_a_bounded_number_of_answers() {
        let mut table = SessionTable::default();
        for seq in 0..(MAX_ANSWERS_PER_SESSION as u64 + 10) {
            apply(&mut table, request(1, seq, 0), Ok(WriteResult::Done), 100);
        }
        let session = table.iter().next().unwrap().1;
        assert_eq!(session.answers.len(), MAX_ANSWERS_PER_SESSION);
        assert_eq!(session.acked_below, 10);
        assert_eq!(
            table.lookup(&request(1, 3, 0)),
            Admission::Stale,
            "forgotten, never applied again"
        );
    }

    #[test]
    fn silent_sessions_are_swept_by_mutation_time() {
        let mut table = SessionTable::default();
        apply(&mut table, request(1, 1, 0), Ok(WriteResult::Done), 1_000);
        apply(
            &mut table,
            request(2, 1, 0),
            Ok(WriteResult::Done),
            1_000 + SESSION_TTL_SECS,
        );
        assert_eq!(table.len(), 2);
        // Client 1 silent for longer than the TTL; client 2 not.
        apply(
            &mut table,
            request(3, 1, 0),
            Ok(WriteResult::Done),
            1_001 + SESSION_TTL_SECS + SWEEP_EVERY_SECS,
        );
        let clients: Vec<u64> = {
            let mut c: Vec<u64> = table.iter().map(|(c, _)| *c).collect();
            c.sort();
            c
        };
        assert_eq!(clients, vec![2, 3]);
    }

    #[test]
    fn the_same_mutations_make_the_same_table_whatever_the_batching() {
        let requests: Vec<(ClientRequest, u64)> = (0..200u64)
            .map(|i| (request(i % 7, i / 7, (i / 7).saturating_sub(3)), 1_000 + i * 5))
            .collect();
        let run = |batch_size: usize| {
            let mut table = SessionTable::default();
            for chunk in requests.chunks(batch_size) {
                let mut batch = SessionBatch::new(&table);
                for (req, now) in chunk {
                    batch.sweep(*now);
                    if batch.admit(req) == Admission::Fresh {
                        batch.record(req, Ok(WriteResult::Done), *now);
                    }
                }
                let changes = batch.changes;
                table.merge(changes);
            }
            table
        };
        assert_eq!(run(1), run(13));
        assert_eq!(run(1), run(200));
    }
}
