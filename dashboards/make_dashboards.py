#!/usr/bin/env python3
"""Writes the Grafana dashboards of dashboards/*.json (run it after editing the panels below).

Each dashboard takes its Prometheus data source from the `datasource` variable and its filters
from label values, so nothing here names an instance. tests/tests/t54_collector_and_prometheus.rs
runs every `expr` below against a real Prometheus scraping a live cluster.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
LEADER = "and on(instance) (aerie_meta_leader == 1)"


def target(expr, legend="", fmt=None):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": "A"}
    if fmt:
        t["format"] = fmt
    return t


def panel(title, kind, targets, unit="short", description="", **extra):
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    p = {
        "title": title,
        "type": kind,
        "datasource": DS,
        "description": description,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "heatmap":
        p["options"] = {"calculate": False, "yAxis": {"unit": unit}, "cellGap": 1}
    p.update(extra)
    return p


def layout(panels, width=12, height=8):
    per_row = 24 // width
    for i, p in enumerate(panels):
        w = p.pop("width", width)
        p["gridPos"] = {"h": height, "w": w, "x": (i % per_row) * width, "y": (i // per_row) * height}
        p["id"] = i + 1
    return panels


def variable(name, query, label):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": "var"},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
    }


def dashboard(uid, title, description, panels, variables=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["aerie"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
            + list(variables)
        },
        "annotations": {"list": []},
        "panels": layout(panels),
    }


def quantiles(metric, by, selector=""):
    return [
        target(
            f"histogram_quantile({q}, sum by ({by}le) (rate({metric}_bucket{selector}[{RATE}])))",
            f"p{label} {{{{{by.rstrip(', ')}}}}}" if by else f"p{label}",
        )
        for q, label in [("0.5", "50"), ("0.99", "99"), ("0.999", "99.9")]
    ]


cluster = dashboard(
    "aerie-cluster",
    "Aerie / Cluster overview",
    "Is the cluster up: the collector's probe availability, partition health, nodes, meta level and leader, balancing.",
    [
        panel("Availability (collector probes)", "stat",
              [target('aerie_collector_availability_ratio{window="1m"}', "1 min {{table}}"),
               target('aerie_collector_availability_ratio{window="1h"}', "1 h {{table}}"),
               target('aerie_collector_availability_ratio{window="1d"}', "1 day {{table}}")],
              unit="percentunit",
              description="Successful / total probes (a set and a get on every partition of the probe table every few seconds)."),
        panel("Probes by outcome", "timeseries",
              [target(f"sum by (outcome) (rate(aerie_collector_probes_total[{RATE}]))", "{{outcome}}")],
              unit="reqps"),
        panel("Probe latency (set + get)", "timeseries",
              quantiles("aerie_collector_probe_duration_seconds", ""), unit="s"),
        panel("Probe partitions failing", "timeseries",
              [target("aerie_collector_failing_partitions", "{{streak}}")],
              description="last: the last probe failed; in_a_row: at least available_detect_alert_fail_count probes in a row failed."),
        panel("Partitions by health", "timeseries",
              [target(f"sum by (health) (aerie_meta_partitions_by_health {LEADER})", "{{health}}")]),
        panel("Replica servers", "timeseries",
              [target(f"aerie_meta_nodes {LEADER}", "{{status}}")]),
        panel("Meta level", "stat",
              [target(f"(aerie_meta_function_level == 1) {LEADER}", "{{level}}")],
              description="The level in force on the leader: fl_lively balances, fl_steady cures only, fl_freezed does nothing that adds load."),
        panel("Meta leader", "timeseries",
              [target("aerie_meta_leader", "{{instance}}")],
              description="1 on the meta server that leads; exactly one should."),
        panel("Balance operations needed", "timeseries",
              [target(f"aerie_meta_balance_operations {LEADER}", "to balance"),
               target(f"aerie_meta_work_in_progress {LEADER}", "{{kind}} under way")]),
        panel("Replicas per node (stddev)", "timeseries",
              [target(f"aerie_meta_replicas_per_node_stddev {LEADER}", "{{kind}}")]),
    ],
)

tables = dashboard(
    "aerie-tables",
    "Aerie / Tables",
    "Per table: requests, latency at the primaries, bytes, size, health and hot partitions (from the collector and the replica servers).",
    [
        panel("Requests per table", "timeseries",
              [target(f'sum by (table) (rate(aerie_table_requests_total{{table=~"$table"}}[{RATE}]))', "{{table}}")],
              unit="reqps"),
        panel("Requests by kind", "timeseries",
              [target(f'sum by (table, op) (rate(aerie_table_requests_total{{table=~"$table"}}[{RATE}]))', "{{table}} {{op}}")],
              unit="reqps"),
        panel("Latency at the primaries (p99 per table)", "timeseries",
              [target(f'histogram_quantile(0.99, sum by (table, le) (rate(aerie_replica_request_duration_seconds_bucket{{table=~"$table"}}[{RATE}])))', "p99 {{table}}"),
               target(f'histogram_quantile(0.5, sum by (table, le) (rate(aerie_replica_request_duration_seconds_bucket{{table=~"$table"}}[{RATE}])))', "p50 {{table}}")],
              unit="s"),
        panel("Bytes read and written", "timeseries",
              [target(f'sum by (table, direction) (rate(aerie_table_bytes_total{{table=~"$table"}}[{RATE}]))', "{{table}} {{direction}}")],
              unit="Bps"),
        panel("Storage", "timeseries",
              [target('aerie_table_storage_bytes{table=~"$table"}', "{{table}}")], unit="bytes"),
        panel("SST files", "timeseries",
              [target('aerie_table_sst_files{table=~"$table"}', "{{table}}")]),
        panel("Hot partitions", "timeseries",
              [target('aerie_table_hot_partitions{table=~"$table"}', "{{table}} {{kind}}")],
              description="Partitions whose QPS stood hot_partition_threshold standard deviations above the table's mean for occurrence_threshold rounds: `app_stat -a TABLE -c COLLECTOR` names them."),
        panel("Partitions not healthy", "timeseries",
              [target(f'(aerie_meta_partitions_by_health{{table=~"$table",health!="fully_healthy"}} {LEADER})', "{{table}} {{health}}"),
               target('aerie_table_unreached_partitions{table=~"$table"}', "{{table}} unreached by the collector")]),
    ],
    [variable("table", "label_values(aerie_table_requests_total, table)", "Table")],
)

replicas = dashboard(
    "aerie-replica-servers",
    "Aerie / Replica servers",
    "Per replica server: requests and latency, replicas per role, the group-commit log, learning, RocksDB, disks and the process.",
    [
        panel("Requests by outcome", "timeseries",
              [target(f'sum by (node, outcome) (rate(aerie_replica_requests_total{{node=~"$node"}}[{RATE}]))', "{{node}} {{outcome}}")],
              unit="reqps"),
        panel("Latency heatmap (all requests)", "heatmap",
              [target(f"sum by (le) (rate(aerie_replica_request_duration_seconds_bucket[{RATE}]))", "{{le}}", fmt="heatmap")],
              unit="s"),
        panel("Latency by operation", "timeseries",
              quantiles("aerie_replica_request_duration_seconds", "op, "), unit="s"),
        panel("Replicas per role", "timeseries",
              [target('aerie_replica_replicas{node=~"$node"}', "{{node}} {{role}}")]),
        panel("Mutations committed", "timeseries",
              [target(f'sum by (node, role) (rate(aerie_replica_mutations_committed_total{{node=~"$node"}}[{RATE}]))', "{{node}} {{role}}")],
              unit="ops"),
        panel("Log: bytes and group commits", "timeseries",
              [target(f'rate(aerie_replica_log_written_bytes_total{{node=~"$node"}}[{RATE}])', "{{node}} bytes/s"),
               target(f'rate(aerie_replica_log_group_commits_total{{node=~"$node"}}[{RATE}])', "{{node}} commits/s")]),
        panel("Learning: bytes by source", "timeseries",
              [target(f'sum by (node, source) (rate(aerie_replica_learn_bytes_total{{node=~"$node"}}[{RATE}]))', "{{node}} {{source}}")],
              unit="Bps"),
        panel("Learning: rounds and completions", "timeseries",
              [target(f'sum by (node, source) (increase(aerie_replica_learn_rounds_total{{node=~"$node"}}[{RATE}]))', "{{node}} rounds {{source}}"),
               target(f'increase(aerie_replica_learn_completed_total{{node=~"$node"}}[{RATE}])', "{{node}} completed")]),
        panel("RocksDB sizes", "timeseries",
              [target('aerie_rocksdb_size_bytes{node=~"$node"}', "{{node}} {{kind}}")], unit="bytes"),
        panel("RocksDB write stalls", "timeseries",
              [target(f'rate(aerie_rocksdb_write_stall_seconds_total{{node=~"$node"}}[{RATE}])', "{{node}} stalled s/s"),
               target('aerie_rocksdb_stalled_replicas{node=~"$node"}', "{{node}} replicas stalled now")]),
        panel("Block cache hit ratio", "timeseries",
              [target(f'sum by (node) (rate(aerie_rocksdb_block_cache_lookups_total{{node=~"$node",outcome="hit"}}[{RATE}])) / sum by (node) (rate(aerie_rocksdb_block_cache_lookups_total{{node=~"$node"}}[{RATE}]))', "{{node}}"),
               target('aerie_rocksdb_block_cache_usage_bytes{node=~"$node"}', "{{node}} bytes in cache")],
              unit="percentunit"),
        panel("Disk space left", "timeseries",
              [target('aerie_replica_disk_bytes{node=~"$node",kind="available"} / ignoring(kind) aerie_replica_disk_bytes{node=~"$node",kind="capacity"}', "{{node}} {{dir}}")],
              unit="percentunit"),
        panel("Process CPU", "timeseries",
              [target(f'rate(process_cpu_seconds_total[{RATE}]) and on(instance) aerie_replica_replicas', "{{instance}}")], unit="percentunit"),
        panel("Process memory and files", "timeseries",
              [target('process_resident_memory_bytes and on(instance) aerie_replica_replicas', "{{instance}} RSS"),
               target('process_open_fds and on(instance) aerie_replica_replicas', "{{instance}} open files")]),
    ],
    [variable("node", "label_values(aerie_replica_replicas, node)", "Replica server")],
)

meta = dashboard(
    "aerie-meta",
    "Aerie / Meta servers",
    "The meta servers: leadership, meta store (ZooKeeper) writes and availability, cure actions, failure detection, level and balancing.",
    [
        panel("Leader", "timeseries", [target("aerie_meta_leader", "{{instance}}")]),
        panel("Meta store available", "timeseries",
              [target("aerie_meta_store_available", "{{instance}}")],
              description="ZooKeeper (or the embedded store) answers this meta server."),
        panel("Store writes by outcome", "timeseries",
              [target(f"sum by (instance, outcome) (rate(aerie_meta_store_writes_total[{RATE}]))", "{{instance}} {{outcome}}")],
              unit="ops"),
        panel("Cure actions", "timeseries",
              [target(f"sum by (action, outcome) (increase(aerie_meta_cure_actions_total[{RATE}]))", "{{action}} {{outcome}}")]),
        panel("Replica servers alive (failure detection)", "timeseries",
              [target(f"aerie_meta_node_alive {LEADER}", "{{node}}")]),
        panel("Self-freezes", "timeseries",
              [target("increase(aerie_meta_self_freezes_total[1h])", "{{instance}}")],
              description="Times the meta froze itself (too few replica servers alive) in the last hour."),
        panel("Balance moves", "timeseries",
              [target(f"sum by (kind, outcome) (increase(aerie_meta_balance_moves_total[{RATE}]))", "{{kind}} {{outcome}}")]),
        panel("Tables and partitions", "timeseries",
              [target(f"aerie_meta_tables {LEADER}", "tables"),
               target(f"aerie_meta_partitions {LEADER}", "partitions")]),
        panel("RPC requests served", "timeseries",
              [target(f'sum by (method) (rate(aerie_rpc_server_requests_total{{method=~"meta[.].*"}}[{RATE}]))', "{{method}}")],
              unit="reqps"),
        panel("Process CPU and memory", "timeseries",
              [target(f'rate(process_cpu_seconds_total[{RATE}]) and on(instance) aerie_meta_leader', "{{instance}} CPU"),
               target('process_resident_memory_bytes and on(instance) aerie_meta_leader', "{{instance}} RSS")]),
    ],
)

here = os.path.dirname(os.path.abspath(__file__))
for name, board in [("cluster", cluster), ("tables", tables), ("replica_servers", replicas), ("meta", meta)]:
    with open(os.path.join(here, f"{name}.json"), "w") as f:
        json.dump(board, f, indent=2)
        f.write("\n")
