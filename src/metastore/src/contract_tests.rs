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
