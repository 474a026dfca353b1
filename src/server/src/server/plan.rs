//! Turns the command line and the configuration into the roles this process runs, each with its
//! own settings. `--role all` derives a development cluster from one configuration: one meta and
//! three replica servers on consecutive ports, all data under one directory.

use crate::cli::{Role, ServerArgs};
use aerie_config::{load, AerieConfig, ConfigSource, ReplicationConfig};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Replica servers started by `--role all`.
pub const DEV_REPLICA_SERVERS: u16 = 3;
pub const DEV_DATA_DIR: &str = "./data/dev";

#[derive(Debug, Clone)]
pub struct RolePlan {
    pub config: AerieConfig,
    pub meta: bool,
    pub replicas: Vec<ReplicationConfig>,
    pub collector: bool,
    pub roles: Vec<String>,
}

pub fn plan(role: Role, args: &ServerArgs) -> Result<RolePlan> {
    let config = load(&ConfigSource {
        file: args.config.clone(),
        overrides: args.set.clone(),
        use_environment: true,
    })?;
    plan_from(role, config, args.data_dir.as_deref())
}

fn with_port(address: &str, offset: u16) -> Result<String> {
    let base: std::net::SocketAddr = address
        .parse()
        .with_context(|| format!("replication.address '{address}' must be ip:port in --role all"))?;
    let port = base
        .port()
        .checked_add(offset)
        .with_context(|| format!("replication.address '{address}': no room for {DEV_REPLICA_SERVERS} ports"))?;
    Ok(std::net::SocketAddr::new(base.ip(), port).to_string())
}

fn dir_string(path: &Path) -> String {
    path.display().to_string()
}

pub fn plan_from(role: Role, mut config: AerieConfig, data_dir: Option<&Path>) -> Result<RolePlan> {
    let mut plan = RolePlan {
        config: config.clone(),
        meta: false,
        replicas: Vec::new(),
        collector: false,
        roles: Vec::new(),
    };
    match role {
        Role::Meta => {
            if let Some(dir) = data_dir {
                config.meta_server.data_dir = dir_string(dir);
            }
            plan.meta = true;
        }
        Role::Replica => {
            if let Some(dir) = data_dir {
                config.replication.data_dirs = format!("default:{}", dir_string(dir));
            }
            plan.replicas.push(config.replication.clone());
        }
        Role::Collector => plan.collector = true,
        Role::All => {
            let base = data_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(DEV_DATA_DIR));
            config.meta_server.data_dir = dir_string(&base.join("meta"));
            config.meta_server.server_list = config.meta_server.address.clone();
            for i in 0..DEV_REPLICA_SERVERS {
                let mut replica = config.replication.clone();
                replica.address = with_port(&config.replication.address, i)?;
                replica.data_dirs = format!("default:{}", dir_string(&base.join(format!("replica{}", i + 1))));
                plan.replicas.push(replica);
            }
            plan.meta = true;
            plan.collector = true;
        }
    }
    config.validate()?;
    plan.roles = [
        (plan.meta, "meta"),
        (!plan.replicas.is_empty(), "replica"),
        (plan.collector, "collector"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name.to_string())
    .collect();
    plan.config = config;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_mode_derives_a_dev_cluster() {
        let plan = plan_from(Role::All, AerieConfig::default(), None).unwrap();
        assert!(plan.meta && plan.collector);
        let addresses: Vec<_> = plan.replicas.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addresses, vec!["127.0.0.1:34801", "127.0.0.1:34802", "127.0.0.1:34803"]);
        assert_eq!(plan.replicas[2].data_dirs, "default:./data/dev/replica3");
        assert_eq!(plan.config.meta_server.data_dir, "./data/dev/meta");
        assert_eq!(plan.config.meta_server.server_list, "127.0.0.1:34601");
    }

    #[test]
    fn data_dir_overrides_per_role() {
        let plan = plan_from(Role::Replica, AerieConfig::default(), Some(Path::new("/srv/aerie"))).unwrap();
        assert_eq!(plan.replicas[0].data_dirs, "default:/srv/aerie");
        let plan = plan_from(Role::All, AerieConfig::default(), Some(Path::new("/tmp/x"))).unwrap();
        assert_eq!(plan.config.meta_server.data_dir, "/tmp/x/meta");
        assert_eq!(plan.roles, vec!["meta", "replica", "collector"]);
    }
}
