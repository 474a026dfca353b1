#!/usr/bin/env bash
# Runs Debian's Prometheus (apt-get install -y prometheus) as a plain process on a loopback port,
# scraping an Aerie cluster every 5 s with dashboards/alerts.yml loaded, and prints its URL.
#
#   scripts/observe.sh start  [--port 9090] [--dir /tmp/aerie-prometheus] [--targets LIST]
#   scripts/observe.sh stop   [--port 9090] [--dir ...]
#   scripts/observe.sh status [--port 9090] [--dir ...]
#
# --targets is a comma-separated list of job=host:port[,host:port...];job=... entries; the default
# is the dev cluster (scripts/dev-cluster.sh), which serves one process-wide /metrics on every port,
# so it is scraped once, on the meta port: "aerie-all=127.0.0.1:34601". For a cluster of separate
# processes: --targets "aerie-meta=m1:34601,m2:34601;aerie-replica=r1:34801,r2:34801;aerie-collector=c:34101".
# Then open the URL: Graph for ad-hoc queries, Alerts for the rules. Grafana: see docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

action="${1:-}"
[ -n "$action" ] || usage
shift
port=9090
dir=""
targets="aerie-all=127.0.0.1:34601"
while (($#)); do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --targets) targets="$2"; shift 2 ;;
        *) echo "observe.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
dir="${dir:-/tmp/aerie-prometheus}"
pidfile="$dir/prometheus.pid"
url="http://127.0.0.1:$port"

source scripts/lib/env.sh
running_pid() { live_pid_in "$pidfile"; }

write_config() {
    {
        echo "global:"
        echo "  scrape_interval: 5s"
        echo "  evaluation_interval: 5s"
        echo "rule_files:"
        echo "  - $PWD/dashboards/alerts.yml"
        echo "scrape_configs:"
        local entry job hosts list
        IFS=';' read -ra entries <<<"$targets"
        for entry in "${entries[@]}"; do
            job="${entry%%=*}"
            hosts="${entry#*=}"
            if [ -z "$job" ] || [ "$job" = "$entry" ] || [ -z "$hosts" ]; then
                echo "observe.sh: --targets entry '$entry' is not job=host:port[,host:port]" >&2
                exit 2
            fi
            list="'${hosts//,/\', \'}'"
            echo "  - job_name: $job"
            echo "    static_configs:"
            echo "      - targets: [$list]"
        done
    } >"$dir/prometheus.yml"
}

start() {
    if pid="$(running_pid)"; then
        echo "prometheus already running at $url (pid $pid, dir $dir)"
        return 0
    fi
    if ! command -v prometheus >/dev/null 2>&1; then
        ensure_build_packages
    fi
    mkdir -p "$dir/data"
    write_config
    promtool check config "$dir/prometheus.yml" >/dev/null
    nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do
        if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
            exec 3>&- 3<&-
            echo "prometheus scraping $targets at $url (log $dir/prometheus.log)"
            echo "try: $url/graph?g0.expr=aerie_collector_availability_ratio  and  $url/alerts"
            return 0
        fi
        if ! running_pid >/dev/null; then
            echo "prometheus exited; its log:" >&2
            tail -20 "$dir/prometheus.log" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "prometheus did not listen on 127.0.0.1:$port within 30 s; log: $dir/prometheus.log" >&2
    exit 1
}

stop() {
    if pid="$(running_pid)"; then
        terminate_pid "$pid" 10 || true
        rm -f "$pidfile"
        echo "prometheus stopped"
    else
        echo "prometheus is not running (dir $dir)"
    fi
}

case "$action" in
    start) start ;;
    stop) stop ;;
    status)
        if pid="$(running_pid)"; then echo "prometheus running at $url (pid $pid)"; else echo "prometheus is not running"; exit 1; fi
        ;;
    *) usage ;;
esac
