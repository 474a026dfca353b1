//! When a data call is tried again, and what the caller is told when it gives up (pure).
//!
//! Every write carries its client session, so retrying it is always safe: a replica that already
//! has it joins the retry to the first attempt or answers with the first answer. What matters is
//! what the caller is told at the end:
//!
//! ```text
//!  every failed attempt certainly had no effect (refused before it was proposed, never sent)
//!                                   ─► the last error (ERR_TIMEOUT when time ran out): not applied
//!  some attempt may have had one (a timeout, a lost connection, ERR_OUTCOME_UNKNOWN)
//!                                   ─► ERR_OUTCOME_UNKNOWN: it may or may not have been applied
//! ```
//!
//! Each attempt gets a share of the call's deadline, so that a dead primary costs one share, not
//! the whole call, and the routing is refreshed after every failure.

use aerie_common::{ErrorCode, Gpid, WireError};
use aerie_rpc::{RemoteFailure, RpcError};
use std::time::Duration;

/// What a failed attempt says about the request's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Certainly not applied by this attempt: try again.
    NotApplied,
    /// Maybe applied: try again (the session makes it take effect once).
    MaybeApplied,
    /// Do not try again (bad input, a table that is gone, ...).
    Final,
}

/// An answer from a replica or a meta server.
pub fn classify_answer(e: &WireError) -> Class {
    match e.code {
        ErrorCode::ERR_NOT_PRIMARY
        | ErrorCode::ERR_OBJECT_NOT_FOUND
        | ErrorCode::ERR_INVALID_STATE
        | ErrorCode::ERR_NOT_ENOUGH_MEMBER
        | ErrorCode::ERR_BUSY
        | ErrorCode::ERR_FORWARD_TO_OTHERS
        | ErrorCode::ERR_SHUTTING_DOWN
        | ErrorCode::ERR_SERVICE_NOT_ACTIVE
        | ErrorCode::ERR_STORAGE => Class::NotApplied,
        ErrorCode::ERR_TIMEOUT | ErrorCode::ERR_OUTCOME_UNKNOWN => Class::MaybeApplied,
        _ => Class::Final,
    }
}

/// A failure of the call itself.
pub fn classify_rpc(e: &RpcError) -> Class {
    match e {
        RpcError::Connect { .. } | RpcError::Blocked { .. } => Class::NotApplied,
        RpcError::Timeout { .. } | RpcError::ConnectionLost { .. } => Class::MaybeApplied,
        RpcError::Remote {
            failure: RemoteFailure::DeadlineExceeded | RemoteFailure::Unavailable(_),
            ..
        } => Class::MaybeApplied,
        RpcError::Remote { .. } | RpcError::Codec(_) => Class::Final,
    }
}

/// Whether a call changes data (its outcome matters when it gives up) or only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Read,
    Write,
}

/// The attempts of one call.
#[derive(Debug, Clone)]
pub struct Attempts {
    kind: CallKind,
    timeout: Duration,
    count: u32,
    maybe_applied: bool,
    last: Option<WireError>,
}

/// The smallest share of the deadline one attempt gets.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);

impl Attempts {
    pub fn new(kind: CallKind, timeout: Duration) -> Self {
        Attempts {
            kind,
            timeout,
            count: 0,
            maybe_applied: false,
            last: None,
        }
    }

    /// How long the next attempt may take, given what is left of the deadline: a quarter of the
    /// call's timeout (at least 200 ms), never more than is left.
    pub fn attempt_timeout(&self, remaining: Duration) -> Duration {
        (self.timeout / 4).max(MIN_ATTEMPT).min(remaining)
    }

    /// Records a failed attempt; `Some(error)` when the call must end now with it.
    pub fn failed(&mut self, error: WireError, class: Class, gpid: Gpid) -> Option<WireError> {
        self.count += 1;
        if class == Class::MaybeApplied {
            self.maybe_applied = true;
        }
        if class == Class::Final {
            return Some(self.outcome_of(error, gpid));
        }
        self.last = Some(error);
        None
    }

    /// The error to end with when time runs out.
    pub fn give_up(&self, gpid: Gpid) -> WireError {
        let last = self
            .last
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no attempt finished".to_string());
        let detail = format!(
            "gave up on {gpid} after {} ms and {} attempt(s); last error: {last}",
            self.timeout.as_millis(),
            self.count
        );
        self.outcome_of(WireError::new(ErrorCode::ERR_TIMEOUT, detail), gpid)
    }

    /// A write that may have been applied ends as `ERR_OUTCOME_UNKNOWN`, whatever the last error.
    fn outcome_of(&self, error: WireError, gpid: Gpid) -> WireError {
        if self.kind == CallKind::Write && self.maybe_applied && error.code != ErrorCode::ERR_OUTCOME_UNKNOWN {
            return WireError::new(
                ErrorCode::ERR_OUTCOME_UNKNOWN,
                format!(
                    "the write to {gpid} may or may not have taken effect (an attempt timed out or its replica stepped down); read the key to find out. {error}"
                ),
            );
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPID: Gpid = Gpid { app_id: 1, pidx: 3 };

    fn err(code: ErrorCode) -> WireError {
        WireError::new(code, "x")
    }

    #[test]
    fn a_write_refused_every_time_was_not_applied() {
        let mut attempts = Attempts::new(CallKind::Write, Duration::from_secs(10));
        for code in [ErrorCode::ERR_NOT_PRIMARY, ErrorCode::ERR_INVALID_STATE] {
            assert!(attempts.failed(err(code), classify_answer(&err(code)), GPID).is_none());
        }
        assert_eq!(attempts.give_up(GPID).code, ErrorCode::ERR_TIMEOUT);
    }

    #[test]
    fn a_write_that_may_have_been_applied_ends_as_outcome_unknown() {
        let mut attempts = Attempts::new(CallKind::Write, Duration::from_secs(10));
        let timeout = RpcError::Timeout {
            method: "replica.ClientWrite",
            to: "127.0.0.1:1".parse().unwrap(),
            after_ms: 2500,
        };
        assert_eq!(classify_rpc(&timeout), Class::MaybeApplied);
        attempts.failed(WireError::from(timeout), Class::MaybeApplied, GPID);
        // Later attempts are refused outright: the first one may still have been applied.
        attempts.failed(err(ErrorCode::ERR_NOT_PRIMARY), Class::NotApplied, GPID);
        assert_eq!(attempts.give_up(GPID).code, ErrorCode::ERR_OUTCOME_UNKNOWN);
        let final_error = attempts
            .failed(err(ErrorCode::ERR_INVALID_PARAMETERS), Class::Final, GPID)
            .unwrap();
        assert_eq!(
            final_error.code,
            ErrorCode::ERR_OUTCOME_UNKNOWN,
            "never a code that says not applied"
        );
    }

    #[test]
    fn a_read_just_times_out() {
        let mut attempts = Attempts::new(CallKind::Read, Duration::from_secs(10));
        attempts.failed(err(ErrorCode::ERR_TIMEOUT), Class::MaybeApplied, GPID);
        assert_eq!(attempts.give_up(GPID).code, ErrorCode::ERR_TIMEOUT);
    }

    #[test]
    fn bad_input_is_not_retried() {
        assert_eq!(classify_answer(&err(ErrorCode::ERR_INVALID_PARAMETERS)), Class::Final);
        assert_eq!(classify_answer(&err(ErrorCode::ERR_APP_NOT_EXIST)), Class::Final);
        assert_eq!(
            classify_answer(&err(ErrorCode::ERR_OUTCOME_UNKNOWN)),
            Class::MaybeApplied
        );
        let mut attempts = Attempts::new(CallKind::Write, Duration::from_secs(10));
        let e = attempts
            .failed(err(ErrorCode::ERR_VALUE_TOO_LARGE), Class::Final, GPID)
            .unwrap();
        assert_eq!(e.code, ErrorCode::ERR_VALUE_TOO_LARGE);
    }

    #[test]
    fn each_attempt_gets_a_share_of_the_deadline() {
        let attempts = Attempts::new(CallKind::Write, Duration::from_secs(10));
        assert_eq!(
            attempts.attempt_timeout(Duration::from_secs(10)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            attempts.attempt_timeout(Duration::from_millis(700)),
            Duration::from_millis(700)
        );
        let short = Attempts::new(CallKind::Read, Duration::from_millis(400));
        assert_eq!(
            short.attempt_timeout(Duration::from_millis(400)),
            Duration::from_millis(200)
        );
    }
}
