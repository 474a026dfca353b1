#!/usr/bin/env bash
# Two aerie builds compared on one load, run alternately so that a busy host slows both alike:
#   scripts/bench_ab.sh [--runs 3] [--mix write|read|mixed] [--inflight 64] [--seconds 15]
#                       A_BIN B_BIN [-- --set key=value ...]
# Each run starts the cluster of scripts/bench_vs_etcd.sh (1 meta, 3 replica servers, separate
# processes on 127.0.3.x), loads 100,000 keys, and drives one mix with kvbench. It prints per run:
# ops/s, p50/p99, server CPU µs/op (utime + stime of the servers over the run), kvbench's CPU µs/op,
# the writes each mutation carried and each fsync made durable (write mix; from the servers'
# metrics), and the share of the machine's time the hypervisor took (steal) or left idle, from
# /proc/stat.
# Compare runs whose steal is low; a run with high steal measures the host, not the build.
# Settings after `--` go to every server of both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh

runs=3 mix=write inflight=64 seconds=15
while (($#)); do
    case "$1" in
    --runs) runs=$2; shift 2 ;;
    --mix) mix=$2; shift 2 ;;
    --inflight) inflight=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) break ;;
    esac
done
(($# >= 2)) || { echo "usage: scripts/bench_ab.sh [options] A_BIN B_BIN [-- --set k=v ...]" >&2; exit 2; }
builds=("$1" "$2")
shift 2
[[ "${1:-}" == "--" ]] && shift
settings=("$@")

build_kvbench
work=$(mktemp -d /var/tmp/aerie-ab.XXXXXX)
pids=()
stop_all() {
    ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
    local pid
    for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

measure() {
    local bin=$1 cpu0 cpu1 stat0 stat1 line mutations0 mutations1 fsyncs0 fsyncs1
    rm -rf "${work:?}"/data && mkdir -p "$work/data"
    start_bench_cluster "$bin" "$work/data" "${settings[@]}"
    "$kvbench" --target aerie --endpoints "$bench_meta" --mix load --inflight 64 --records 100000 >/dev/null
    cpu0=$(cpu_micros "${pids[@]}")
    mutations0=$(metric_sum aerie_replica_mutations_committed_total "${bench_replicas[@]}")
    fsyncs0=$(metric_sum aerie_replica_log_group_commits_total "${bench_replicas[@]}")
    read -r -a stat0 </proc/stat
    line=$(/usr/bin/time -f "%U %S" -o "$work/kvbench.time" "$kvbench" --target aerie \
        --endpoints "$bench_meta" --mix "$mix" --inflight "$inflight" --seconds "$seconds" --records 100000)
    cpu1=$(cpu_micros "${pids[@]}")
    mutations1=$(metric_sum aerie_replica_mutations_committed_total "${bench_replicas[@]}")
    fsyncs1=$(metric_sum aerie_replica_log_group_commits_total "${bench_replicas[@]}")
    read -r -a stat1 </proc/stat
    stop_all
    python3 - "$line" "$((cpu1 - cpu0))" "$(tail -1 "$work/kvbench.time")" "${stat0[*]}" "${stat1[*]}" \
        "$((mutations1 - mutations0))" "$((fsyncs1 - fsyncs0))" "${#bench_replicas[@]}" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
ops = max(r["ops"], 1)
# Every mutation is committed by each of its replicas (one per replica server here), and every
# replica server makes each write durable once.
replicas = int(sys.argv[8])
writes = ops if r["mix"] == "write" else 0
per_mutation = writes * replicas / max(int(sys.argv[6]), 1)
per_fsync = writes * replicas / max(int(sys.argv[7]), 1)
client = sum(map(float, sys.argv[3].split())) * 1e6 / ops
before, after = ([int(v) for v in s.split()[1:9]] for s in sys.argv[4:6])
delta = [a - b for a, b in zip(after, before)]
total = max(sum(delta), 1)
print(f"{r['ops_per_sec']:>8.0f} ops/s  p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}  "
      f"server {int(sys.argv[2]) / ops:4.0f} us/op  client {client:3.0f} us/op  "
      + (f"writes/mutation {per_mutation:4.1f}  writes/fsync {per_fsync:4.1f}  " if writes else "") +
      f"steal {100 * delta[7] / total:3.0f} %  idle {100 * delta[3] / total:3.0f} %")
EOF
}

for ((run = 1; run <= runs; run++)); do
    for side in 0 1; do
        printf '%s run %d: ' "$([[ $side == 0 ]] && echo A || echo B)" "$run"
        measure "${builds[$side]}"
    done
done
