//! A real Prometheus server (Debian's `prometheus`) as a plain process on a free loopback port,
//! scraping the processes a test names every second, with `dashboards/alerts.yml` loaded; queries
//! through its HTTP API; and the dashboards' and rules' queries, read from `dashboards/`.

use crate::process::free_port;
use aerie_common::NodeAddr;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where the dashboards and the alert rules live.
pub fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: run scripts/test.sh (it installs Debian's prometheus) or apt-get install prometheus"
    );
}

/// Runs `promtool` with `args` in `dashboards/`; its output, or a panic with it when it fails.
pub fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(dashboards_dir())
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Runs `promtool check metrics` on a `/metrics` text; what it complains about (empty when clean).
pub fn promtool_check_metrics(text: &str) -> String {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub struct TestPrometheus {
    pub addr: NodeAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Starts Prometheus scraping `targets` (job name, addresses) every second.
    pub fn start(targets: &[(&str, Vec<NodeAddr>)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: NodeAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n");
        config.push_str(&format!("  - {}\n", dashboards_dir().join("alerts.yml").display()));
        config.push_str("scrape_configs:\n");
        for (job, addrs) in targets {
            let list: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        TestPrometheus { addr, child, _dir: dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        let (status, body) = crate::http::try_http_get(self.addr, path)?;
        serde_json::from_str(&body).map_err(|e| format!("{e}: {status} {body}"))
    }

    /// An instant query: the result vector, or the error Prometheus gave.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let answer = self.get(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        if answer["status"] != "success" {
            return Err(format!("{expr}: {answer}"));
        }
        match &answer["data"]["result"] {
            Value::Array(result) => Ok(result.clone()),
            other => Ok(vec![other.clone()]),
        }
    }

    /// The scrape targets and whether each is up.
    pub fn targets(&self) -> Result<Vec<(String, String)>, String> {
        let answer = self.get("/api/v1/targets")?;
        Ok(answer["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["scrapeUrl"].as_str().unwrap_or("").to_string(),
                    t["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// The alerts Prometheus evaluates from the rules, with their state.
    pub fn rules_loaded(&self) -> Result<usize, String> {
        let answer = self.get("/api/v1/rules")?;
        Ok(answer["data"]["groups"]
            .as_array()
            .map(|groups| groups.iter().map(|g| g["rules"].as_array().map_or(0, Vec::len)).sum())
            .unwrap_or(0))
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every panel query of every dashboard: (dashboard file, panel title, expression).
pub fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                queries.push((
                    name.clone(),
                    panel["title"].as_str().unwrap().to_string(),
                    target["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    queries
}

/// Every alert of `alerts.yml`: (name, expression). The file is read as YAML-lite: `- alert:` and
/// `expr:` lines.
pub fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dashboards_dir().join("alerts.yml")).unwrap();
    let mut rules = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- alert:") {
            name = Some(n.trim().to_string());
        } else if let (Some(expr), Some(n)) = (line.strip_prefix("expr:"), name.take()) {
            rules.push((n, expr.trim().to_string()));
        }
    }
    rules
}

/// The metric names an expression reads (words before `{`, `[` or an operator that look like
/// metric names: aerie_*, process_* and up).
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    let mut in_quotes = false;
    let mut in_braces = false;
    for c in expr.chars().chain([' ']) {
        match c {
            '"' => in_quotes = !in_quotes,
            '{' if !in_quotes => in_braces = true,
            '}' if !in_quotes => in_braces = false,
            _ => {}
        }
        if !in_quotes && !in_braces && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
            continue;
        }
        if (word.starts_with("aerie_") || word.starts_with("process_") || word == "up") && !names.contains(&word) {
            names.push(word.clone());
        }
        word.clear();
    }
    names
}

/// Replaces Grafana's variables with what a test queries for: every value, and a rate window
/// that covers several 1 s scrapes.
pub fn substitute_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("\"$table\"", "\".*\"")
        .replace("\"$node\"", "\".*\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skips_labels_and_functions() {
        let expr = r#"sum by (node) (rate(aerie_rocksdb_block_cache_lookups_total{node=~"$node",outcome="hit"}[30s])) / ignoring(kind) up{job="aerie_x"} and on(instance) (aerie_meta_leader == 1)"#;
        assert_eq!(
            metric_names(expr),
            ["aerie_rocksdb_block_cache_lookups_total", "up", "aerie_meta_leader"]
        );
    }
}
