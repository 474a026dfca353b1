//! Loading: defaults, then the file, then the environment, then `--set` overrides; then validation.

use crate::sections::{AerieConfig, Invalid};
use std::path::PathBuf;

/// Where a process gets its configuration from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    /// `section.key=value` pairs, applied last.
    pub overrides: Vec<String>,
    /// Read `AERIE_SECTION__KEY` environment variables.
    pub use_environment: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("bad --set '{0}': expected section.key=value")]
    BadOverride(String),
    #[error("invalid config at '{key}': {reason}")]
    Key { key: String, reason: String },
    #[error("invalid config: {0}")]
    Other(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// `AERIE_SECTION__KEY=value` variables as `section.key=value` overrides. Variables without the
/// double underscore (such as `AERIE_LOG` or a test's `AERIE_BIN`) are not configuration.
fn environment_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut found: Vec<String> = vars
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix("AERIE_")?;
            let (section, key) = rest.split_once("__")?;
            Some(format!(
                "{}.{}={value}",
                section.to_ascii_lowercase(),
                key.to_ascii_lowercase()
            ))
        })
        .collect();
    found.sort();
    found
}

/// Loads and validates the configuration.
pub fn load(source: &ConfigSource) -> Result<AerieConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = &source.file {
        if !path.is_file() {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        builder = builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
    }
    let mut overrides = Vec::new();
    if source.use_environment {
        overrides.extend(environment_overrides(std::env::vars()));
    }
    overrides.extend(source.overrides.iter().cloned());
    for item in &overrides {
        let (key, value) = item
            .split_once('=')
            .filter(|(k, _)| k.contains('.') && !k.trim().is_empty())
            .ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
        builder = builder
            .set_override(key.trim(), value.trim())
            .map_err(|e| ConfigError::Other(e.to_string()))?;
    }
    let merged = builder.build().map_err(|e| match &source.file {
        Some(path) => ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        },
        None => ConfigError::Other(e.to_string()),
    })?;
    let config: AerieConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.into_inner().to_string();
        ConfigError::Key { key, reason }
    })?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn load_text(text: &str, overrides: &[&str]) -> Result<AerieConfig, ConfigError> {
        let file = file(text);
        load(&ConfigSource {
            file: Some(file.path().to_path_buf()),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            use_environment: false,
        })
    }

    #[test]
    fn file_values_and_overrides_apply() {
        let config = load_text(
            "[replication]\nfd_lease_seconds = 9\nfd_grace_seconds = 12\n",
            &["replication.fd_grace_seconds=15", "meta_server.cluster_name=prod"],
        )
        .unwrap();
        assert_eq!(config.replication.fd_lease_seconds, 9);
        assert_eq!(config.replication.fd_grace_seconds, 15);
        assert_eq!(config.meta_server.cluster_name, "prod");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_text("[replication]\nfd_lease_secs = 9\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fd_lease_secs"), "{err}");
        assert!(err.contains("replication"), "{err}");
    }

    #[test]
    fn unknown_section_is_named() {
        let err = load_text("[replicaton]\nx = 1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("replicaton"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = load_text("", &["replication.fd_lease_seconds=soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("replication.fd_lease_seconds"), "{err}");
    }

    #[test]
    fn bad_enum_value_lists_choices() {
        let err = load_text("[meta_server]\nmeta_store = \"etcd\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("meta_server.meta_store") && err.contains("embedded"),
            "{err}"
        );
    }

    #[test]
    fn invalid_combination_is_named() {
        let err = load_text("[replication]\nfd_grace_seconds = 5\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("replication.fd_grace_seconds"), "{err}");
    }

    #[test]
    fn malformed_override_is_rejected() {
        let err = load_text("", &["novalue"]).unwrap_err();
        assert!(matches!(err, ConfigError::BadOverride(_)));
    }

    #[test]
    fn environment_variables_become_overrides() {
        let vars = [
            ("AERIE_REPLICATION__FD_LEASE_SECONDS".to_string(), "9".to_string()),
            ("AERIE_BIN".to_string(), "/x".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        assert_eq!(
            environment_overrides(vars.into_iter()),
            vec!["replication.fd_lease_seconds=9".to_string()]
        );
    }

    #[test]
    fn missing_file_is_reported() {
        let err = load(&ConfigSource {
            file: Some("/nonexistent/aerie.toml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/aerie.toml"));
    }
}
