//! Bounded waiting: every wait in the tests has a deadline and says what it waited for.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Polls `probe` until it returns `Ok`, or panics after `timeout` with the last reason.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("never checked");
    while Instant::now() < deadline {
        match probe().await {
            Ok(value) => return value,
            Err(reason) => last = reason,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}: {last}");
}
