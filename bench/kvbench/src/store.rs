//! The two stores behind one interface: a put and a get of one key.

use aerie_client::{Client, ClientOptions, Table};
use aerie_common::{ErrorCode, NodeAddr};
use anyhow::{anyhow, Context, Result};
use futures::future::BoxFuture;
use std::time::Duration;

pub trait Store: Send + Sync + 'static {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> BoxFuture<'_, Result<()>>;
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<()>>;
}

pub struct AerieStore {
    table: Table,
}

impl AerieStore {
    pub async fn open(metas: &str, name: &str, partitions: u32) -> Result<Self> {
        let metas = NodeAddr::parse_list(metas).map_err(|e| anyhow!("--endpoints: {e}"))?;
        let options = ClientOptions {
            timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let client = Client::new(metas, options).map_err(|e| anyhow!("{e}"))?;
        let table = match client.table(name).await {
            Ok(table) => table,
            Err(e) if e.code == ErrorCode::ERR_APP_NOT_EXIST => {
                create_when_members_alive(&client, name, partitions).await?;
                client.table(name).await.map_err(|e| anyhow!("{e}"))?
            }
            Err(e) => return Err(anyhow!("opening table {name}: {e}")),
        };
        Ok(AerieStore { table })
    }
}

/// Creates the table, waiting (up to a minute) for the meta to see three replica servers alive:
/// a server answers its health check before its first beacon reaches the meta.
async fn create_when_members_alive(client: &Client, name: &str, partitions: u32) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match client.create_table(name, partitions, 3).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code == ErrorCode::ERR_NOT_ENOUGH_MEMBER && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(anyhow!("creating table {name}: {e}")),
        }
    }
}

impl Store for AerieStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.table.set(&key, b"", &value, 0).await.map_err(|e| anyhow!("{e}")) })
    }

    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.table.get(&key, b"").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(anyhow!("key not found (run --mix load first)")),
                Err(e) => Err(anyhow!("{e}")),
            }
        })
    }
}

pub struct EtcdStore {
    kv: etcd_client::KvClient,
}

impl EtcdStore {
    pub async fn connect(endpoints: &str) -> Result<Self> {
        let endpoints: Vec<&str> = endpoints.split(',').collect();
        let client = etcd_client::Client::connect(endpoints, None)
            .await
            .context("connecting to etcd")?;
        Ok(EtcdStore { kv: client.kv_client() })
    }
}

impl Store for EtcdStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> BoxFuture<'_, Result<()>> {
        let mut kv = self.kv.clone();
        Box::pin(async move {
            kv.put(key, value, None).await?;
            Ok(())
        })
    }

    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<()>> {
        let mut kv = self.kv.clone();
        Box::pin(async move {
            let options = etcd_client::GetOptions::new().with_serializable();
            let answer = kv.get(key, Some(options)).await?;
            if answer.kvs().is_empty() {
                return Err(anyhow!("key not found (run --mix load first)"));
            }
            Ok(())
        })
    }
}
