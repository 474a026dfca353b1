//! Storage errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb at {path}: {source}")]
    Rocks {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt mutation log {path} at offset {offset}: {reason}")]
    CorruptLog { path: PathBuf, offset: u64, reason: String },
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{} is still open in this process after {waited_secs} s", path.display())]
    StillOpen { path: PathBuf, waited_secs: u64 },
    #[error("the {0} lock is poisoned (a thread panicked while holding it)")]
    LockPoisoned(&'static str),
    #[error("shared log: {0}")]
    SharedLog(String),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }
}
