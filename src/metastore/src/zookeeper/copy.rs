//! Copying a subtree from one ZooKeeper ensemble to another (`aerie zk-copy`): data and structure,
//! parents before children. Ephemeral nodes (a meta's election node) belong to a live session and
//! are not copied. The target must not hold the subtree yet unless `overwrite` is set, in which case
//! the target's subtree is deleted first so that afterwards both are the same.

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub nodes: usize,
    pub bytes: usize,
    pub skipped_ephemeral: usize,
    pub deleted_on_target: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cannot connect to ZooKeeper {hosts}: {error}")]
    Connect { hosts: String, error: ZkError },
    #[error("source path {0} does not exist")]
    NoSource(String),
    #[error("target already has {0} (with data or children); pass --overwrite to replace it")]
    TargetNotEmpty(String),
    #[error("ZooKeeper call on {path} failed: {error}")]
    Call { path: String, error: ZkError },
}

pub async fn connect(hosts: &str) -> Result<Client, CopyError> {
    Client::connector()
        .with_session_timeout(std::time::Duration::from_secs(10))
        .with_fail_eagerly()
        .connect(hosts)
        .await
        .map_err(|error| CopyError::Connect {
            hosts: hosts.to_string(),
            error,
        })
}

fn call(path: &str) -> impl Fn(ZkError) -> CopyError + '_ {
    move |error| CopyError::Call {
        path: path.to_string(),
        error,
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Copies `root` and everything under it from `from` to `to`; `progress` is called after each node.
pub async fn copy_tree(
    from: &Client,
    to: &Client,
    root: &str,
    overwrite: bool,
    mut progress: impl FnMut(&CopyReport),
) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    if from.check_stat(root).await.map_err(call(root))?.is_none() {
        return Err(CopyError::NoSource(root.to_string()));
    }
    if let Some(stat) = to.check_stat(root).await.map_err(call(root))? {
        if stat.num_children > 0 || stat.data_length > 0 {
            if !overwrite {
                return Err(CopyError::TargetNotEmpty(root.to_string()));
            }
            report.deleted_on_target = delete_tree(to, root).await?;
        }
    }
    // Ancestors of the root, empty, as zkCli would need them.
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut prefix = String::new();
    let parts: Vec<&str> = root.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        prefix.push('/');
        prefix.push_str(part);
        match to.create(&prefix, &[], &persistent).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(call(&prefix)(e)),
        }
    }
    let mut pending = vec![root.to_string()];
    while let Some(path) = pending.pop() {
        let (data, stat) = match from.get_data(&path).await {
            Ok(found) => found,
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(call(&path)(e)),
        };
        if stat.ephemeral_owner != 0 {
            report.skipped_ephemeral += 1;
            continue;
        }
        match to.create(&path, &data, &persistent).await {
            Ok(_) => {}
            Err(ZkError::NodeExists) if path == root => {
                to.set_data(&path, &data, None).await.map_err(call(&path))?;
            }
            Err(e) => return Err(call(&path)(e)),
        }
        report.nodes += 1;
        report.bytes += data.len();
        progress(&report);
        let mut children = match from.list_children(&path).await {
            Ok(children) => children,
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(call(&path)(e)),
        };
        children.sort_unstable_by(|a, b| b.cmp(a));
        pending.extend(children.iter().map(|c| child_path(&path, c)));
    }
    Ok(report)
}

/// Deletes `root` and everything under it, children first; returns how many nodes went.
pub async fn delete_tree(client: &Client, root: &str) -> Result<usize, CopyError> {
    let mut order = Vec::new();
    let mut pending = vec![root.to_string()];
    while let Some(path) = pending.pop() {
        match client.list_children(&path).await {
            Ok(children) => pending.extend(children.iter().map(|c| child_path(&path, c))),
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(call(&path)(e)),
        }
        order.push(path);
    }
    let mut deleted = 0;
    for path in order.iter().rev() {
        if path == "/" {
            continue;
        }
        match client.delete(path, None).await {
            Ok(()) => deleted += 1,
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(call(path)(e)),
        }
    }
    Ok(deleted)
}
