//! The same contract checked against every implementation.

use crate::{EmbeddedStore, MemoryStore, MetaStore, MetaStoreError, StoreOp};

async fn contract(store: &dyn MetaStore) {
    store.ensure_path("/aerie/test/apps").await.unwrap();
    store.ensure_path("/aerie/test/apps").await.unwrap();
    assert_eq!(store.children("/aerie/test").await.unwrap(), vec!["apps".to_string()]);

    store.create("/aerie/test/apps/1", b"one".to_vec()).await.unwrap();
    assert!(matches!(
        store.create("/aerie/test/apps/1", b"again".to_vec()).await,
        Err(MetaStoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create("/aerie/missing/x", vec![]).await,
        Err(MetaStoreError::NotFound(p)) if p == "/aerie/missing"
    ));
    assert_eq!(
        store.get("/aerie/test/apps/1").await.unwrap(),
        Some((b"one".to_vec(), 0))
    );

    store.set("/aerie/test/apps/1", b"uno".to_vec(), Some(0)).await.unwrap();
    let stale = store.set("/aerie/test/apps/1", b"stale".to_vec(), Some(0)).await;
    assert!(matches!(
        stale,
        Err(MetaStoreError::BadVersion {
            expected: 0,
            actual: 1,
            ..
        })
    ));
    assert_eq!(
        store.get("/aerie/test/apps/1").await.unwrap(),
        Some((b"uno".to_vec(), 1))
    );

    // A transaction creates a node and its children at once, or nothing at all.
    store
        .transaction(vec![
            StoreOp::Create {
                path: "/aerie/test/apps/2".into(),
                data: b"two".to_vec(),
            },
            StoreOp::Create {
                path: "/aerie/test/apps/2/0".into(),
                data: b"p0".to_vec(),
            },
            StoreOp::Create {
                path: "/aerie/test/apps/2/1".into(),
                data: b"p1".to_vec(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.children("/aerie/test/apps/2").await.unwrap(),
        vec!["0".to_string(), "1".to_string()]
    );
    let failed = store
        .transaction(vec![
            StoreOp::Create {
                path: "/aerie/test/apps/3".into(),
                data: vec![],
            },
            StoreOp::Set {
                path: "/aerie/test/apps/1".into(),
                data: vec![],
                expected: Some(99),
            },
        ])
        .await;
    assert!(matches!(failed, Err(MetaStoreError::BadVersion { .. })));
    assert_eq!(
        store.get("/aerie/test/apps/3").await.unwrap(),
        None,
        "a failed transaction left a trace"
    );

    assert!(matches!(
        store.delete("/aerie/test/apps/2").await,
        Err(MetaStoreError::NotEmpty(_))
    ));
    store
        .transaction(vec![
            StoreOp::Delete {
                path: "/aerie/test/apps/2/0".into(),
            },
            StoreOp::Delete {
                path: "/aerie/test/apps/2/1".into(),
            },
            StoreOp::Delete {
                path: "/aerie/test/apps/2".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.children("/aerie/test/apps").await.unwrap(), vec!["1".to_string()]);
    assert!(matches!(store.get("bad//path").await, Err(MetaStoreError::BadPath(_))));
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn embedded_store_keeps_the_contract_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        contract(&store).await;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get("/aerie/test/apps/1").await.unwrap(),
        Some((b"uno".to_vec(), 1))
    );
    assert_eq!(store.children("/aerie/test/apps").await.unwrap(), vec!["1".to_string()]);
}

#[tokio::test]
async fn embedded_store_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedStore::open(dir.path()).unwrap();
    let second = EmbeddedStore::open(dir.path());
    assert!(matches!(second, Err(MetaStoreError::Unavailable(_))));
}

mod zookeeper {
    use super::contract;
    use crate::zookeeper::copy::{connect, copy_tree, CopyError};
    use crate::zookeeper::election::elect;
    use crate::zookeeper::test_server::TestZookeeper;
    use crate::{LeaderView, Leadership, MetaStore, ZkSession, ZookeeperStore};
    use aerie_common::NodeAddr;
    use std::time::{Duration, Instant};

    async fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn connected_store(zk: &TestZookeeper) -> ZookeeperStore {
        let session = ZkSession::start(&zk.hosts(), Duration::from_secs(4)).unwrap();
        let store = ZookeeperStore::new(session, Duration::from_secs(4));
        wait_for("a ZooKeeper session", Duration::from_secs(20), || store.health().ok()).await;
        store
    }

    #[tokio::test]
    async fn zookeeper_store_keeps_the_contract_and_says_when_it_is_down() {
        let zk = TestZookeeper::start();
        let store = connected_store(&zk).await;
        contract(&store).await;
        assert_eq!(store.describe(), format!("zookeeper:{}", zk.hosts()));

        zk.stop();
        let why = wait_for("the store to notice", Duration::from_secs(20), || store.health().err()).await;
        assert!(why.contains(&zk.hosts()), "{why}");
        // Nothing is sent while disconnected: a clear refusal, not an unknown outcome.
        let refused = store.create("/aerie/test/apps/9", vec![]).await;
        assert!(
            matches!(refused, Err(crate::MetaStoreError::Unavailable(_))),
            "{refused:?}"
        );

        zk.start_again();
        wait_for("the store to reconnect", Duration::from_secs(20), || {
            store.health().ok()
        })
        .await;
        assert_eq!(
            store.get("/aerie/test/apps/1").await.unwrap(),
            Some((b"uno".to_vec(), 1))
        );
    }

    #[tokio::test]
    async fn a_write_left_unanswered_is_ambiguous_not_failed() {
        let zk = TestZookeeper::start();
        let session = ZkSession::start(&zk.hosts(), Duration::from_secs(10)).unwrap();
        let store = ZookeeperStore::new(session, Duration::from_secs(1));
        wait_for("a ZooKeeper session", Duration::from_secs(20), || store.health().ok()).await;
        store.ensure_path("/aerie/test").await.unwrap();
        zk.pause();
        let unanswered = store.create("/aerie/test/x", b"x".to_vec()).await;
        zk.resume();
        assert!(
            matches!(unanswered, Err(crate::MetaStoreError::Ambiguous(_))),
            "{unanswered:?}"
        );
        // Whether the server took the write is unknown: the store must be read back, not guessed.
        wait_for("the store to answer again", Duration::from_secs(20), || {
            store.health().ok()
        })
        .await;
        let after = store.get("/aerie/test/x").await.unwrap();
        assert!(after.is_none() || after == Some((b"x".to_vec(), 0)), "{after:?}");
    }

    fn addr(port: u16) -> NodeAddr {
        format!("127.0.0.1:{port}").parse().unwrap()
    }

    fn leaders(views: &[&Leadership]) -> Vec<usize> {
        views
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_leader())
            .map(|(i, _)| i)
            .collect()
    }

    #[tokio::test]
    async fn one_meta_leads_the_others_follow_it_and_a_dead_leader_is_replaced() {
        let zk = TestZookeeper::start();
        let timeout = Duration::from_secs(2);
        let mut sessions: Vec<Option<ZkSession>> = Vec::new();
        let (mut views, mut fences) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let session = ZkSession::start(&zk.hosts(), timeout).unwrap();
            let (view, fence) = elect(&session, "/aerie/test/meta_leader", addr(34601 + i));
            views.push(view);
            fences.push(fence);
            sessions.push(Some(session));
        }
        let all: Vec<&Leadership> = views.iter().collect();
        let first = wait_for("one leader and two followers", Duration::from_secs(20), || {
            let leaders = leaders(&all);
            let leader = *leaders.first()?;
            let following = views
                .iter()
                .filter(|v| v.current() == LeaderView::Follower(addr(34601 + leader as u16)))
                .count();
            (leaders.len() == 1 && following == 2).then_some(leader)
        })
        .await;

        // Only the leader's store writes; a follower's is refused before anything is sent.
        for (i, fence) in fences.iter().enumerate() {
            let session = sessions[i].clone().unwrap();
            let store = ZookeeperStore::new(session, Duration::from_secs(4)).fenced_by(fence.clone());
            let written = store.ensure_path(&format!("/aerie/test/by{i}")).await;
            if i == first {
                written.unwrap();
            } else {
                assert!(
                    matches!(written, Err(crate::MetaStoreError::Unavailable(_))),
                    "{written:?}"
                );
            }
        }

        // The leader's process dies: its session is not closed, ZooKeeper expires it.
        let killed_at = Instant::now();
        sessions[first] = None;
        let rest: Vec<&Leadership> = views
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != first)
            .map(|(_, v)| v)
            .collect();
        let second = wait_for("a new leader", Duration::from_secs(20), || {
            let leaders = leaders(&rest);
            (leaders.len() == 1).then(|| leaders[0])
        })
        .await;
        let took = killed_at.elapsed();
        let follower = rest[1 - second].current();
        assert!(matches!(follower, LeaderView::Follower(_)), "{follower:?}");
        eprintln!("new leader after {took:?} (session timeout {timeout:?})");
    }

    #[tokio::test]
    async fn a_leader_cut_off_from_zookeeper_gives_up_and_leads_again_when_it_is_back() {
        let zk = TestZookeeper::start();
        let session = ZkSession::start(&zk.hosts(), Duration::from_secs(3)).unwrap();
        let (view, fence) = elect(&session, "/aerie/test/meta_leader", addr(34601));
        wait_for("the lead", Duration::from_secs(20), || view.is_leader().then_some(())).await;
        assert!(fence.node().is_some());
        zk.pause();
        let why = wait_for("the leader to give up", Duration::from_secs(15), || {
            match view.current() {
                LeaderView::Unknown(why) => Some(why),
                _ => None,
            }
        })
        .await;
        zk.resume();
        assert!(fence.node().is_none(), "no writes once the lead is given up");
        assert!(why.contains("no answer from ZooKeeper"), "{why}");
        wait_for("the lead again", Duration::from_secs(30), || {
            view.is_leader().then_some(())
        })
        .await;
        assert!(fence.node().is_some());
    }

    #[tokio::test]
    async fn a_leader_that_closes_its_session_is_replaced_before_any_session_could_expire() {
        let zk = TestZookeeper::start();
        // Far longer than the waits below: only a closed session explains a new leader in time.
        let timeout = Duration::from_secs(60);
        let (first, second) = (
            ZkSession::start(&zk.hosts(), timeout).unwrap(),
            ZkSession::start(&zk.hosts(), timeout).unwrap(),
        );
        let a = elect(&first, "/aerie/test/meta_leader", addr(34601)).0;
        wait_for("the first to lead", Duration::from_secs(20), || {
            a.is_leader().then_some(())
        })
        .await;
        let b = elect(&second, "/aerie/test/meta_leader", addr(34602)).0;
        wait_for("the second to follow", Duration::from_secs(20), || {
            (b.current() == LeaderView::Follower(addr(34601))).then_some(())
        })
        .await;
        first.close(Duration::from_secs(3)).await;
        assert!(!a.is_leader());
        wait_for("the second to lead", Duration::from_secs(10), || {
            b.is_leader().then_some(())
        })
        .await;
    }

    #[tokio::test]
    async fn a_subtree_is_copied_with_its_data_and_a_full_target_is_refused() {
        let (source, target) = (TestZookeeper::start(), TestZookeeper::start());
        let store = connected_store(&source).await;
        store.ensure_path("/aerie/c1/apps").await.unwrap();
        store.set("/aerie/c1", b"root".to_vec(), None).await.unwrap();
        store.create("/aerie/c1/apps/1", b"{\"app\":1}".to_vec()).await.unwrap();
        for pidx in 0..3 {
            store
                .create(&format!("/aerie/c1/apps/1/{pidx}"), format!("p{pidx}").into_bytes())
                .await
                .unwrap();
        }
        let (from, to) = (
            connect(&source.hosts()).await.unwrap(),
            connect(&target.hosts()).await.unwrap(),
        );
        let report = copy_tree(&from, &to, "/aerie/c1", false, |_| {}).await.unwrap();
        assert_eq!(report.nodes, 6, "{report:?}");
        for path in ["/aerie/c1", "/aerie/c1/apps/1", "/aerie/c1/apps/1/2"] {
            assert_eq!(
                to.get_data(path).await.unwrap().0,
                from.get_data(path).await.unwrap().0,
                "{path}"
            );
        }
        let mut pidxs = to.list_children("/aerie/c1/apps/1").await.unwrap();
        pidxs.sort();
        assert_eq!(pidxs, ["0", "1", "2"]);

        let again = copy_tree(&from, &to, "/aerie/c1", false, |_| {}).await;
        assert!(matches!(again, Err(CopyError::TargetNotEmpty(_))), "{again:?}");
        // With overwrite, nodes only the target had are gone afterwards.
        to.create(
            "/aerie/c1/stale",
            b"x",
            &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
        let replaced = copy_tree(&from, &to, "/aerie/c1", true, |_| {}).await.unwrap();
        assert_eq!(replaced.nodes, 6);
        assert!(to.check_stat("/aerie/c1/stale").await.unwrap().is_none());
        let missing = copy_tree(&from, &to, "/nothing/here", false, |_| {}).await;
        assert!(matches!(missing, Err(CopyError::NoSource(_))), "{missing:?}");
    }
}
