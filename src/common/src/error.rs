//! Wire error codes, named as in Pegasus so that operators' runbooks carry over. A `WireError` is an
//! answer the caller can act on (retry elsewhere, refresh its cache, fix its input); it always carries a
//! human-readable detail naming the problem.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes. The `Display` form is the Pegasus name, e.g. `ERR_INVALID_VERSION`.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    ERR_OK,
    ERR_UNKNOWN,
    ERR_TIMEOUT,
    ERR_NETWORK_FAILURE,
    ERR_INVALID_PARAMETERS,
    ERR_INVALID_STATE,
    ERR_INVALID_VERSION,
    ERR_INVALID_DATA,
    ERR_OBJECT_NOT_FOUND,
    ERR_APP_EXIST,
    ERR_APP_NOT_EXIST,
    ERR_APP_DROPPED,
    ERR_NOT_ENOUGH_MEMBER,
    ERR_NOT_PRIMARY,
    ERR_FORWARD_TO_OTHERS,
    ERR_STATE_FREEZED,
    ERR_META_STORE,
    ERR_STORAGE,
    ERR_BUSY,
    ERR_CAPACITY_EXCEEDED,
    ERR_VALUE_TOO_LARGE,
    ERR_KEY_TOO_LARGE,
    ERR_SHUTTING_DOWN,
    ERR_UNKNOWN_COMMAND,
    /// The server is starting (e.g. a meta loading its state): try again shortly.
    ERR_SERVICE_NOT_ACTIVE,
    /// A write may or may not have taken effect: it was proposed, then its replica stepped down,
    /// lost its lease or closed, or the client gave up waiting. Read the key to find out; a retry
    /// with the same client session is applied at most once.
    ERR_OUTCOME_UNKNOWN,
}

impl ErrorCode {
    pub fn name(self) -> &'static str {
        // The Debug form is exactly the variant name.
        match self {
            ErrorCode::ERR_OK => "ERR_OK",
            ErrorCode::ERR_UNKNOWN => "ERR_UNKNOWN",
            ErrorCode::ERR_TIMEOUT => "ERR_TIMEOUT",
            ErrorCode::ERR_NETWORK_FAILURE => "ERR_NETWORK_FAILURE",
            ErrorCode::ERR_INVALID_PARAMETERS => "ERR_INVALID_PARAMETERS",
            ErrorCode::ERR_INVALID_STATE => "ERR_INVALID_STATE",
            ErrorCode::ERR_INVALID_VERSION => "ERR_INVALID_VERSION",
            ErrorCode::ERR_INVALID_DATA => "ERR_INVALID_DATA",
            ErrorCode::ERR_OBJECT_NOT_FOUND => "ERR_OBJECT_NOT_FOUND",
            ErrorCode::ERR_APP_EXIST => "ERR_APP_EXIST",
            ErrorCode::ERR_APP_NOT_EXIST => "ERR_APP_NOT_EXIST",
            ErrorCode::ERR_APP_DROPPED => "ERR_APP_DROPPED",
            ErrorCode::ERR_NOT_ENOUGH_MEMBER => "ERR_NOT_ENOUGH_MEMBER",
            ErrorCode::ERR_NOT_PRIMARY => "ERR_NOT_PRIMARY",
            ErrorCode::ERR_FORWARD_TO_OTHERS => "ERR_FORWARD_TO_OTHERS",
            ErrorCode::ERR_STATE_FREEZED => "ERR_STATE_FREEZED",
            ErrorCode::ERR_META_STORE => "ERR_META_STORE",
            ErrorCode::ERR_STORAGE => "ERR_STORAGE",
            ErrorCode::ERR_BUSY => "ERR_BUSY",
            ErrorCode::ERR_CAPACITY_EXCEEDED => "ERR_CAPACITY_EXCEEDED",
            ErrorCode::ERR_VALUE_TOO_LARGE => "ERR_VALUE_TOO_LARGE",
            ErrorCode::ERR_KEY_TOO_LARGE => "ERR_KEY_TOO_LARGE",
            ErrorCode::ERR_SHUTTING_DOWN => "ERR_SHUTTING_DOWN",
            ErrorCode::ERR_UNKNOWN_COMMAND => "ERR_UNKNOWN_COMMAND",
            ErrorCode::ERR_SERVICE_NOT_ACTIVE => "ERR_SERVICE_NOT_ACTIVE",
            ErrorCode::ERR_OUTCOME_UNKNOWN => "ERR_OUTCOME_UNKNOWN",
        }
    }

    /// Errors after which a client should refresh its routing and try again.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::ERR_TIMEOUT
                | ErrorCode::ERR_NETWORK_FAILURE
                | ErrorCode::ERR_INVALID_STATE
                | ErrorCode::ERR_OBJECT_NOT_FOUND
                | ErrorCode::ERR_NOT_PRIMARY
                | ErrorCode::ERR_NOT_ENOUGH_MEMBER
                | ErrorCode::ERR_FORWARD_TO_OTHERS
                | ErrorCode::ERR_BUSY
                | ErrorCode::ERR_SHUTTING_DOWN
                | ErrorCode::ERR_SERVICE_NOT_ACTIVE
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error answer: a stable code and a detail that names the problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct WireError {
    pub code: ErrorCode,
    pub detail: String,
}

impl WireError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        WireError {
            code,
            detail: detail.into(),
        }
    }

    /// `ERR_FORWARD_TO_OTHERS` from a meta server that does not lead: names the leader when known
    /// (as `leader=host:port`, which [`WireError::forward_target`] reads back) and says why.
    pub fn forward_to(leader: Option<crate::NodeAddr>, why: &str) -> Self {
        let detail = match leader {
            Some(leader) => format!("leader={leader}; this meta server does not lead ({why})"),
            None => format!("this meta server does not lead and knows no leader ({why})"),
        };
        WireError::new(ErrorCode::ERR_FORWARD_TO_OTHERS, detail)
    }

    /// The leader named by an `ERR_FORWARD_TO_OTHERS` answer.
    pub fn forward_target(&self) -> Option<crate::NodeAddr> {
        if self.code != ErrorCode::ERR_FORWARD_TO_OTHERS {
            return None;
        }
        let rest = self.detail.strip_prefix("leader=")?;
        rest.split(';').next()?.trim().parse().ok()
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.detail)
        }
    }
}

pub type WireResult<T> = Result<T, WireError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_names_the_leader_it_was_given() {
        let leader: crate::NodeAddr = "127.0.0.1:34601".parse().unwrap();
        assert_eq!(
            WireError::forward_to(Some(leader), "follower").forward_target(),
            Some(leader)
        );
        assert_eq!(WireError::forward_to(None, "no session").forward_target(), None);
        let other = WireError::new(ErrorCode::ERR_TIMEOUT, "leader=127.0.0.1:1");
        assert_eq!(other.forward_target(), None);
    }

    #[test]
    fn names_match_debug_form() {
        for code in [
            ErrorCode::ERR_OK,
            ErrorCode::ERR_INVALID_VERSION,
            ErrorCode::ERR_FORWARD_TO_OTHERS,
            ErrorCode::ERR_UNKNOWN_COMMAND,
            ErrorCode::ERR_SERVICE_NOT_ACTIVE,
        ] {
            assert_eq!(code.name(), format!("{code:?}"));
        }
    }

    #[test]
    fn wire_error_display_names_code_and_detail() {
        let err = WireError::new(ErrorCode::ERR_APP_NOT_EXIST, "table 'foo' does not exist");
        assert_eq!(err.to_string(), "ERR_APP_NOT_EXIST: table 'foo' does not exist");
    }
}
