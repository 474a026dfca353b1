//! Leader election among meta servers: each joins with an ephemeral sequential node
//! `<dir>/n-<seq>` holding its address; the lowest sequence leads. The view is re-read on every
//! change of the directory and once a second.
//!
//! A leader that has not heard from ZooKeeper for 80% of the session timeout gives up leading (the
//! view becomes `Unknown`) even though its session may still be alive: ZooKeeper may soon expire it
//! and let another meta lead. The time counts from the last answer the election got (it asks once
//! a second), not from when the client noticed a lost connection, which can be seconds later. The
//! new leader waits a grace period (`fd_grace_seconds`) before it judges a node, and a node stops
//! serving a lease (`fd_lease_seconds`) after the last beacon this leader answered; grace > lease
//! keeps the two apart.

use super::session::{SessionWatch, ZkSession};
use super::within;
use crate::leadership::{LeaderView, Leadership};
use aerie_common::NodeAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

const TICK: Duration = Duration::from_secs(1);
/// Joining and leaving give up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a leader without a connection checks whether it must give up.
const CUT_OFF_TICK: Duration = Duration::from_millis(250);

/// The election node of this meta while it leads. The store checks it in every write, so a meta that
/// lost its session (and with it the lead) cannot change the cluster map any more.
#[derive(Clone, Default)]
pub struct Fence(Arc<Mutex<Option<String>>>);

impl Fence {
    pub fn node(&self) -> Option<String> {
        self.0.lock().expect("fence lock").clone()
    }

    fn set(&self, node: Option<String>) {
        *self.0.lock().expect("fence lock") = node;
    }
}

/// Joins the election under `dir` as `me`; the view follows it for as long as the session keeper
/// lives. The fence names this meta's election node while it leads.
pub fn elect(session: &ZkSession, dir: &str, me: NodeAddr) -> (Leadership, Fence) {
    let (tx, rx) = watch::channel(LeaderView::Unknown("joining the election".into()));
    let fence = Fence::default();
    session.spawn(run(
        session.watch(),
        dir.to_string(),
        me,
        Publisher {
            tx,
            fence: fence.clone(),
        },
    ));
    (Leadership::from_receiver(rx), fence)
}

struct Publisher {
    tx: watch::Sender<LeaderView>,
    fence: Fence,
}

impl Publisher {
    fn borrow(&self) -> LeaderView {
        self.tx.borrow().clone()
    }
}

/// Publishes `view`; `node` is this meta's election node (the fence while it leads).
fn publish(publisher: &Publisher, view: LeaderView, node: Option<&str>) {
    let (tx, fence) = (&publisher.tx, &publisher.fence);
    // The fence is set before the view says Leader, and cleared before it says anything else.
    match (&view, node) {
        (LeaderView::Leader, Some(node)) => fence.set(Some(node.to_string())),
        _ => fence.set(None),
    }
    tx.send_if_modified(|old| {
        if *old == view {
            return false;
        }
        match &view {
            LeaderView::Leader => info!("this meta server is now the leader"),
            LeaderView::Follower(leader) => info!(%leader, "following the leader meta server"),
            LeaderView::Unknown(why) => warn!(why, "no known leader meta server"),
        }
        *old = view;
        true
    });
}

async fn run(watch: SessionWatch, dir: String, me: NodeAddr, tx: Publisher) {
    let Some(mut sessions) = watch.subscribe() else { return };
    loop {
        let current = sessions.borrow_and_update().clone();
        let Some(current) = current else {
            publish(&tx, LeaderView::Unknown("no ZooKeeper session".into()), None);
            if sessions.changed().await.is_err() {
                return;
            }
            continue;
        };
        // Held for the whole session: a clean close waits until the election lets go of it.
        let client = current.client.clone();
        let _held = current;
        let mine = match join(&client, &dir, me).await {
            Ok(name) => name,
            Err(e) => {
                publish(
                    &tx,
                    LeaderView::Unknown(format!("cannot join the election under {dir}: {e}")),
                    None,
                );
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = sessions.changed() => {}
                }
                continue;
            }
        };
        let node = format!("{dir}/{mine}");
        info!(%node, "joined the meta leader election");
        let mut last_answer = Instant::now();
        // Follow the election until this session ends.
        loop {
            let connected = watch.is_connected();
            let observed = match connected {
                true => observe(&client, &dir, &mine, me).await,
                false => Err(Observe::Failed(ZkError::ConnectionLoss)),
            };
            let watcher = match observed {
                Ok((view, watcher)) => {
                    last_answer = Instant::now();
                    publish(&tx, view, Some(&node));
                    Some(watcher)
                }
                Err(Observe::Gone) => break,
                Err(Observe::Failed(e)) => {
                    let view = step_down_if_cut_off(tx.borrow(), last_answer.elapsed(), watch.session_timeout);
                    if !matches!(view, LeaderView::Unknown(_)) && connected {
                        warn!(error = %e, "cannot read the election; keeping the last view for now");
                    }
                    publish(&tx, view, Some(&node));
                    None
                }
            };
            let tick = if watcher.is_some() { TICK } else { CUT_OFF_TICK };
            let changed = async move {
                match watcher {
                    Some(w) => {
                        w.changed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(tick) => {}
                result = sessions.changed() => {
                    if result.is_err() { return; }
                    break;
                }
            }
            if sessions.has_changed().unwrap_or(true) {
                break;
            }
        }
        // The session ended (or our node vanished): leave nothing behind and join again.
        publish(&tx, LeaderView::Unknown("rejoining the election".into()), None);
        let _ = within(CALL_TIMEOUT, client.delete(&node, None)).await;
    }
}

/// A leader that got no answer from ZooKeeper for 80% of the session timeout stops leading.
fn step_down_if_cut_off(view: LeaderView, silent_for: Duration, session_timeout: Duration) -> LeaderView {
    match view {
        LeaderView::Leader if silent_for > session_timeout.mul_f64(0.8) => LeaderView::Unknown(format!(
            "no answer from ZooKeeper for {:.1} s (over 80% of the {:.1} s session timeout): leadership given up",
            silent_for.as_secs_f64(),
            session_timeout.as_secs_f64()
        )),
        view => view,
    }
}

/// Creates `dir` if needed and this meta's election node; returns the node's name.
async fn join(client: &Client, dir: &str, me: NodeAddr) -> Result<String, ZkError> {
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut prefix = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        match within(CALL_TIMEOUT, client.create(&prefix, &[], &persistent)).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    let ephemeral = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (_, sequence) = within(
        CALL_TIMEOUT,
        client.create(&format!("{dir}/n-"), me.to_string().as_bytes(), &ephemeral),
    )
    .await?;
    Ok(format!("n-{sequence}"))
}

enum Observe {
    /// Our node is gone (the session ended): join again.
    Gone,
    Failed(ZkError),
}

/// A look at the election gives up after this long (the cut-off check must not wait behind it).
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads who leads and sets a watch on the directory.
async fn observe(
    client: &Client,
    dir: &str,
    mine: &str,
    me: NodeAddr,
) -> Result<(LeaderView, zookeeper_client::OneshotWatcher), Observe> {
    let (mut children, watcher) = within(OBSERVE_TIMEOUT, client.list_and_watch_children(dir))
        .await
        .map_err(Observe::Failed)?;
    if !children.iter().any(|c| c == mine) {
        return Err(Observe::Gone);
    }
    children.sort();
    let first = children.first().cloned().unwrap_or_default();
    if first == mine {
        return Ok((LeaderView::Leader, watcher));
    }
    let leader_node = format!("{dir}/{first}");
    let view = match within(OBSERVE_TIMEOUT, client.get_data(&leader_node)).await {
        Ok((data, _)) => match String::from_utf8_lossy(&data).parse::<NodeAddr>() {
            Ok(leader) if leader == me => LeaderView::Unknown(
                "an earlier session of this meta server still holds the lead; waiting for it to expire".into(),
            ),
            Ok(leader) => LeaderView::Follower(leader),
            Err(_) => LeaderView::Unknown(format!("election node {dir}/{first} does not hold an address")),
        },
        // The leader just left: the watch fires and the next look finds the new one.
        Err(ZkError::NoNode) => LeaderView::Unknown("the leader just left".into()),
        Err(e) => return Err(Observe::Failed(e)),
    };
    Ok((view, watcher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_gives_up_after_80_percent_of_the_session_without_an_answer() {
        let session = Duration::from_secs(5);
        let keep = step_down_if_cut_off(LeaderView::Leader, Duration::from_millis(3_900), session);
        assert_eq!(keep, LeaderView::Leader);
        let given_up = step_down_if_cut_off(LeaderView::Leader, Duration::from_millis(4_100), session);
        assert!(
            matches!(&given_up, LeaderView::Unknown(why) if why.contains("4.1 s")),
            "{given_up:?}"
        );
        let follower = LeaderView::Follower("127.0.0.1:1".parse().unwrap());
        assert_eq!(
            step_down_if_cut_off(follower.clone(), Duration::from_secs(60), session),
            follower
        );
    }
}
