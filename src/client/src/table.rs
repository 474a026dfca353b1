//! A table handle: routing cache and the data operations.

use crate::meta::Client;
use crate::retry::{classify_answer, classify_rpc, Attempts, CallKind, Class};
use aerie_common::{partition_index, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_proto::data::{CheckAndSet, ReadOp, ReadResult, Record, SortKeyRange, TtlUpdate, WriteOp, WriteResult};
use aerie_proto::meta::{AppInfo, AppState};
use aerie_proto::replica::{ClientRead, ClientWrite};
use aerie_proto::Rpc;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Table {
    client: Client,
    routing: Arc<RwLock<Arc<AppState>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

/// A record's scan position: resume strictly after it.
pub type ScanCursor = (Vec<u8>, Vec<u8>);

fn unexpected(what: &str) -> WireError {
    WireError::new(ErrorCode::ERR_INVALID_DATA, format!("unexpected answer to {what}"))
}

/// A write answered with a result of the wrong kind took effect, but what it did is not known.
fn unexpected_write(what: &str) -> WireError {
    WireError::new(
        ErrorCode::ERR_OUTCOME_UNKNOWN,
        format!("unexpected answer to {what}: it was applied, with an unknown result"),
    )
}

impl Table {
    pub(crate) fn new(client: Client, routing: AppState) -> Self {
        Table {
            client,
            routing: Arc::new(RwLock::new(Arc::new(routing))),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn routing(&self) -> Arc<AppState> {
        self.routing.read().expect("routing").clone()
    }

    pub fn app(&self) -> AppInfo {
        self.routing().info.clone()
    }

    pub fn partition_count(&self) -> u32 {
        self.routing().info.partition_count
    }

    /// The partition of a key and its primary as currently cached.
    pub fn locate(&self, hash_key: &[u8], sort_key: &[u8]) -> (Gpid, Option<NodeAddr>) {
        let routing = self.routing();
        let pidx = partition_index(hash_key, sort_key, routing.info.partition_count);
        (
            Gpid::new(routing.info.app_id, pidx),
            routing.partitions[pidx as usize].primary,
        )
    }

    /// Reloads the routing from the meta, unless another caller did since `seen` was read.
    pub async fn refresh_after(&self, seen: &Arc<AppState>) -> WireResult<()> {
        let _guard = self.refreshing.lock().await;
        if !Arc::ptr_eq(seen, &self.routing()) {
            return Ok(());
        }
        let fresh = self.client.query_config(&seen.info.app_name).await?;
        if fresh.info.app_id != seen.info.app_id {
            self.client.forget_table(&seen.info.app_name);
            return Err(WireError::new(
                ErrorCode::ERR_APP_NOT_EXIST,
                format!(
                    "table '{}' was dropped and created again; open it anew",
                    seen.info.app_name
                ),
            ));
        }
        *self.routing.write().expect("routing") = Arc::new(fresh);
        Ok(())
    }

    /// Sends a request to a partition's primary. After any failure the routing is refreshed and
    /// the request tried again with backoff, each attempt within a share of the deadline, until
    /// the call's timeout (see `retry`).
    async fn call_primary<M, T>(&self, pidx: u32, kind: CallKind, make: impl Fn(Gpid, u32) -> M) -> WireResult<T>
    where
        M: Rpc<Response = WireResult<T>>,
    {
        let timeout = self.client.options().timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = Attempts::new(kind, timeout);
        loop {
            let routing = self.routing();
            let gpid = Gpid::new(routing.info.app_id, pidx);
            let config = &routing.partitions[pidx as usize];
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (error, class) = match config.primary {
                None => (
                    WireError::new(ErrorCode::ERR_INVALID_STATE, format!("partition {gpid} has no primary")),
                    Class::NotApplied,
                ),
                Some(primary) => match self
                    .client
                    .network()
                    .call(
                        primary,
                        make(gpid, routing.info.partition_count),
                        attempts.attempt_timeout(remaining),
                    )
                    .await
                {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(e)) => {
                        let class = classify_answer(&e);
                        (e, class)
                    }
                    Err(e) => {
                        let class = classify_rpc(&e);
                        (WireError::from(e), class)
                    }
                },
            };
            if let Some(error) = attempts.failed(error, class, gpid) {
                return Err(error);
            }
            if Instant::now() + backoff >= deadline {
                return Err(attempts.give_up(gpid));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            // The refresh too stays within the call's deadline (with the meta down it would take
            // the meta timeout, and callers queue behind one another for it).
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.refresh_after(&routing)).await {
                Err(_elapsed) => return Err(attempts.give_up(gpid)),
                Ok(Err(e)) if e.code == ErrorCode::ERR_APP_NOT_EXIST => {
                    return Err(attempts.failed(e, Class::Final, gpid).expect("final"));
                }
                Ok(_) => {}
            }
        }
    }

    fn pidx_of(&self, hash_key: &[u8], sort_key: &[u8]) -> u32 {
        partition_index(hash_key, sort_key, self.partition_count())
    }

    /// Applies one write, at most once however often it is retried (it carries the client's
    /// session). `ERR_OUTCOME_UNKNOWN` means it may or may not have taken effect.
    pub async fn write(&self, op: WriteOp) -> WireResult<WriteResult> {
        let pidx = self.pidx_of(op.hash_key(), op.first_sort_key());
        let session = self.client.session();
        let ticket = session.begin();
        self.call_primary(pidx, CallKind::Write, |gpid, partition_count| ClientWrite {
            gpid,
            partition_count,
            op: op.clone(),
            request: Some(session.request(ticket.seq)),
        })
        .await
    }

    pub async fn read(&self, op: ReadOp) -> WireResult<ReadResult> {
        let sort_key: &[u8] = match &op {
            ReadOp::Get { sort_key, .. } | ReadOp::Ttl { sort_key, .. } => sort_key,
            _ => b"",
        };
        let hash_key = op.hash_key().ok_or_else(|| {
            WireError::new(
                ErrorCode::ERR_INVALID_PARAMETERS,
                "a read of the whole table goes through scan_partition",
            )
        })?;
        let pidx = self.pidx_of(hash_key, sort_key);
        self.read_partition(pidx, op).await
    }

    async fn read_partition(&self, pidx: u32, op: ReadOp) -> WireResult<ReadResult> {
        self.call_primary(pidx, CallKind::Read, |gpid, partition_count| ClientRead {
            gpid,
            partition_count,
            op: op.clone(),
        })
        .await
    }

    pub async fn set(&self, hash_key: &[u8], sort_key: &[u8], value: &[u8], ttl_secs: u32) -> WireResult<()> {
        self.write(WriteOp::Put {
            hash_key: hash_key.to_vec(),
            sort_key: sort_key.to_vec(),
            value: value.to_vec(),
            ttl_secs,
        })
        .await
        .map(|_| ())
    }

    pub async fn get(&self, hash_key: &[u8], sort_key: &[u8]) -> WireResult<Option<Vec<u8>>> {
        match self
            .read(ReadOp::Get {
                hash_key: hash_key.to_vec(),
                sort_key: sort_key.to_vec(),
            })
            .await?
        {
            ReadResult::Value(value) => Ok(value),
            _ => Err(unexpected("get")),
        }
    }

    pub async fn del(&self, hash_key: &[u8], sort_key: &[u8]) -> WireResult<()> {
        self.write(WriteOp::Remove {
            hash_key: hash_key.to_vec(),
            sort_key: sort_key.to_vec(),
        })
        .await
        .map(|_| ())
    }

    pub async fn multi_set(&self, hash_key: &[u8], kvs: Vec<(Vec<u8>, Vec<u8>)>, ttl_secs: u32) -> WireResult<()> {
        self.write(WriteOp::MultiPut {
            hash_key: hash_key.to_vec(),
            kvs,
            ttl_secs,
        })
        .await
        .map(|_| ())
    }

    /// Fetches the given sort keys of a hash key (those that exist).
    pub async fn multi_get(&self, hash_key: &[u8], sort_keys: Vec<Vec<u8>>) -> WireResult<Vec<Record>> {
        let op = ReadOp::MultiGet {
            hash_key: hash_key.to_vec(),
            sort_keys,
            range: SortKeyRange::default(),
            max_count: 0,
            max_bytes: 0,
            no_value: false,
        };
        match self.read(op).await? {
            ReadResult::Records { records, .. } => Ok(records),
            _ => Err(unexpected("multi_get")),
        }
    }

    /// Fetches a sort-key range of a hash key; `complete` is false when `max_count` cut it short.
    pub async fn multi_get_range(
        &self,
        hash_key: &[u8],
        range: SortKeyRange,
        max_count: u32,
        no_value: bool,
    ) -> WireResult<(Vec<Record>, bool)> {
        let op = ReadOp::MultiGet {
            hash_key: hash_key.to_vec(),
            sort_keys: Vec::new(),
            range,
            max_count,
            max_bytes: 0,
            no_value,
        };
        match self.read(op).await? {
            ReadResult::Records { records, complete } => Ok((records, complete)),
            _ => Err(unexpected("multi_get")),
        }
    }

    pub async fn multi_del(&self, hash_key: &[u8], sort_keys: Vec<Vec<u8>>) -> WireResult<u64> {
        match self
            .write(WriteOp::MultiRemove {
                hash_key: hash_key.to_vec(),
                sort_keys,
            })
            .await?
        {
            WriteResult::Removed { count } => Ok(count),
            _ => Err(unexpected_write("multi_del")),
        }
    }

    pub async fn incr(&self, hash_key: &[u8], sort_key: &[u8], increment: i64, ttl: TtlUpdate) -> WireResult<i64> {
        match self
            .write(WriteOp::Incr {
                hash_key: hash_key.to_vec(),
                sort_key: sort_key.to_vec(),
                increment,
                ttl,
            })
            .await?
        {
            WriteResult::Incremented { new_value } => Ok(new_value),
            _ => Err(unexpected_write("incr")),
        }
    }

    /// Returns whether the set happened and, if asked for, the checked value.
    pub async fn check_and_set(&self, cas: CheckAndSet) -> WireResult<(bool, Option<Vec<u8>>)> {
        match self.write(WriteOp::CheckAndSet(cas)).await? {
            WriteResult::CheckAndSet {
                set_succeeded,
                check_value,
            } => Ok((set_succeeded, check_value)),
            _ => Err(unexpected_write("check_and_set")),
        }
    }

    pub async fn sortkey_count(&self, hash_key: &[u8]) -> WireResult<u64> {
        match self
            .read(ReadOp::SortKeyCount {
                hash_key: hash_key.to_vec(),
            })
            .await?
        {
            ReadResult::Count(count) => Ok(count),
            _ => Err(unexpected("sortkey_count")),
        }
    }

    /// `None`: not found; `Some(None)`: no TTL; `Some(Some(s))`: expires in `s` seconds.
    pub async fn ttl(&self, hash_key: &[u8], sort_key: &[u8]) -> WireResult<Option<Option<u32>>> {
        match self
            .read(ReadOp::Ttl {
                hash_key: hash_key.to_vec(),
                sort_key: sort_key.to_vec(),
            })
            .await?
        {
            ReadResult::Ttl(ttl) => Ok(ttl),
            _ => Err(unexpected("ttl")),
        }
    }

    /// Every record of one hash key, fetched page by page.
    pub async fn scan_hash_key(&self, hash_key: &[u8], batch_size: u32) -> WireResult<Vec<Record>> {
        let pidx = self.pidx_of(hash_key, b"");
        let mut records = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self
                .scan_page(pidx, Some(hash_key.to_vec()), after, batch_size, false)
                .await?;
            records.extend(page);
            match next {
                Some(cursor) => after = Some(cursor),
                None => return Ok(records),
            }
        }
    }

    /// One page of a scan of partition `pidx`, of one hash key or all of them.
    pub async fn scan_page(
        &self,
        pidx: u32,
        hash_key: Option<Vec<u8>>,
        after: Option<ScanCursor>,
        batch_size: u32,
        no_value: bool,
    ) -> WireResult<(Vec<Record>, Option<ScanCursor>)> {
        if pidx >= self.partition_count() {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("partition index {pidx} out of range 0..{}", self.partition_count()),
            ));
        }
        let op = ReadOp::Scan {
            hash_key,
            after,
            batch_size,
            no_value,
        };
        match self.read_partition(pidx, op).await? {
            ReadResult::ScanPage { records, next } => Ok((records, next)),
            _ => Err(unexpected("scan")),
        }
    }
}
