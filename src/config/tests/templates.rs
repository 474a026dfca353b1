//! The commented templates under `config/`: each one loads, and together they document every key.

use aerie_config::{load, AerieConfig, ConfigSource};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn templates() -> Vec<PathBuf> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../../config");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    found
}

fn keys(value: &toml::Value, prefix: &str, into: &mut BTreeSet<String>) {
    if let toml::Value::Table(table) = value {
        for (key, inner) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if inner.is_table() {
                keys(inner, &path, into);
            } else {
                into.insert(path);
            }
        }
    }
}

#[test]
fn every_template_loads() {
    let found = templates();
    let names: Vec<_> = found
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for expected in ["collector.toml", "dev.toml", "meta.toml", "replica.toml"] {
        assert!(names.contains(&expected.to_string()), "config/{expected} is missing");
    }
    for path in found {
        load(&ConfigSource {
            file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    }
}

#[test]
fn templates_document_every_key() {
    let mut documented = BTreeSet::new();
    for path in templates() {
        let text = std::fs::read_to_string(&path).unwrap();
        let value: toml::Value = toml::from_str(&text).unwrap();
        keys(&value, "", &mut documented);
    }
    let mut all = BTreeSet::new();
    keys(&toml::Value::try_from(AerieConfig::default()).unwrap(), "", &mut all);
    let missing: Vec<_> = all.difference(&documented).collect();
    assert!(missing.is_empty(), "keys no template documents: {missing:?}");
}

#[test]
fn a_template_with_an_unknown_key_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(templates().into_iter().find(|p| p.ends_with("replica.toml")).unwrap()).unwrap();
    std::fs::write(&path, text.replace("fd_lease_seconds = 8", "fd_lease_secs = 8")).unwrap();
    let err = load(&ConfigSource {
        file: Some(path),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("fd_lease_secs"), "{err}");
}
