#!/usr/bin/env bash
# Aerie against etcd on this machine, with one load generator (bench/kvbench) for both:
#   scripts/bench_vs_etcd.sh [--seconds 20] [--inflight 1,16,64,256] [--mixes write,read,mixed]
#                            [--records 100000] [--value-size 100] [--only aerie|etcd] [--no-db-bench]
#   AERIE_BENCH_BIN=path/to/aerie: measure that binary instead of this checkout's release build.
# etcd: 3 members (Debian's etcd-server) on 127.0.2.1-3. Aerie: 1 meta on 127.0.3.1 and 3 replica
# servers on 127.0.3.11-13, separate processes, release build, defaults (log fsynced before every
# acknowledgement, as etcd's WAL). Both get the same records loaded first, then each mix for the
# chosen seconds at each number of requests in flight. Server CPU is utime + stime of the server
# processes over the run (from /proc), divided by the operations; fsyncs per second per server and
# client writes per fsync come from each store's own metrics. db_bench (Debian's rocksdb-tools)
# fillrandom with and without sync gives the engine's limit on this disk.
# Data lives under a temporary directory on the same disk as /var/tmp; everything started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh

seconds=20 inflight=1,16,64,256 mixes=write,read,mixed records=100000 value_size=100 only="" db_bench=1
while (($#)); do
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --inflight) inflight=$2; shift 2 ;;
    --mixes) mixes=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --value-size) value_size=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-db-bench) db_bench=0; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

ensure_build_packages
ensure_packages etcd-server etcd-client rocksdb-tools

# AERIE_BENCH_BIN: an aerie binary to measure instead of this checkout's release build (to compare
# two versions).
if [[ -n "${AERIE_BENCH_BIN:-}" ]]; then
    aerie_bin=$AERIE_BENCH_BIN
else
    release_target="${AERIE_RELEASE_TARGET_DIR:-$HOME/.cache/aerie/release-target}"
    CARGO_TARGET_DIR="$release_target" cargo build --release --locked -p aerie
    aerie_bin="$release_target/release/aerie"
fi
build_kvbench

work=$(mktemp -d /var/tmp/aerie-vs-etcd.XXXXXX)
pids=()
stop_all() {
    ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
    ((${#pids[@]})) && wait "${pids[@]}" 2>/dev/null || true
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

# Polls CMD until it succeeds, for at most SECONDS.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "gave up after ${seconds}s waiting for $what" >&2
            exit 1
        fi
        sleep 0.2
    done
}

results="$work/results.jsonl"
: >"$results"

# run TARGET ENDPOINTS FSYNC_METRIC METRIC_ADDRS... : every mix at every in-flight count.
run_matrix() {
    local target=$1 endpoints=$2 fsync_metric=$3
    shift 3
    local addrs=("$@") mix n
    echo "[$target] loading $records records"
    "$kvbench" --target "$target" --endpoints "$endpoints" --mix load --inflight 64 \
        --records "$records" --value-size "$value_size" >>"$results"
    for mix in ${mixes//,/ }; do
        for n in ${inflight//,/ }; do
            local cpu0 fs0 line cpu1 fs1
            cpu0=$(cpu_micros "${pids[@]}")
            fs0=$(metric_sum "$fsync_metric" "${addrs[@]}")
            line=$("$kvbench" --target "$target" --endpoints "$endpoints" --mix "$mix" --inflight "$n" \
                --seconds "$seconds" --records "$records" --value-size "$value_size")
            cpu1=$(cpu_micros "${pids[@]}")
            fs1=$(metric_sum "$fsync_metric" "${addrs[@]}")
            echo "$line" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
cpu, fsyncs, servers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r["cpu_us_per_op"] = cpu / max(r["ops"], 1)
r["fsyncs_per_sec_per_server"] = fsyncs / servers / r["seconds"]
writes = r["ops"] * {"write": 1.0, "mixed": 0.5}.get(r["mix"], 0.0)
r["writes_per_fsync"] = writes / (fsyncs / servers) if fsyncs else None
print(json.dumps(r))' "$((cpu1 - cpu0))" "$((fs1 - fs0))" "${#addrs[@]}" | tee -a "$results" |
                python3 -c 'import json,sys; print("[{target}] {mix:>6} x{inflight:<4} {ops_per_sec:>9.0f} ops/s  p99 {p99_ms:.2f} ms  errors {errors}".format(**json.loads(sys.stdin.read())))'
        done
    done
}

if [[ "$only" != aerie ]]; then
    cluster=""
    for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.2.$i:2380"; done
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$work/etcd$i" \
            --listen-client-urls "http://127.0.2.$i:2379" --advertise-client-urls "http://127.0.2.$i:2379" \
            --listen-peer-urls "http://127.0.2.$i:2380" --initial-advertise-peer-urls "http://127.0.2.$i:2380" \
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token aerie-bench \
            >"$work/etcd$i.log" 2>&1 &
        pids+=($!)
    done
    endpoints="http://127.0.2.1:2379,http://127.0.2.2:2379,http://127.0.2.3:2379"
    wait_for 60 "etcd's members to be healthy" env ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health
    echo "etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members up"
    run_matrix etcd "$endpoints" etcd_disk_wal_fsync_duration_seconds_count \
        127.0.2.1:2379 127.0.2.2:2379 127.0.2.3:2379
    stop_all
fi

if [[ "$only" != etcd ]]; then
    start_bench_cluster "$aerie_bin" "$work"
    echo "aerie: 1 meta, 3 replica servers up"
    run_matrix aerie "$bench_meta" aerie_replica_log_group_commits_total "${bench_replicas[@]}"
    stop_all
fi

if ((db_bench)); then
    for sync in 1 0; do
        for threads in 1 16; do
            rm -rf "$work/db_bench"
            num=$((sync ? 20000 / threads + 1 : 200000 / threads))
            ops=$(db_bench --benchmarks=fillrandom --db="$work/db_bench" --sync=$sync --threads=$threads \
                --num=$num --key_size=16 --value_size="$value_size" 2>/dev/null |
                awk '/^fillrandom/ { for (i = 1; i <= NF; i++) if ($i == "ops/sec" || $i == "ops/sec;") print $(i - 1) }')
            printf '{"target":"db_bench","mix":"fillrandom sync=%s","inflight":%s,"ops_per_sec":%s}\n' \
                "$sync" "$threads" "${ops:-0}" | tee -a "$results"
        done
    done
fi

echo
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| target | mix | in flight | ops/s | p50 ms | p99 ms | p999 ms | errors | server CPU µs/op | fsyncs/s/server | writes/fsync |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
fmt = lambda v, f: "" if v is None else format(v, f)
for r in rows:
    if r["mix"] == "load":
        continue
    print("| {} | {} | {} | {:,.0f} | {} | {} | {} | {} | {} | {} | {} |".format(
        r["target"], r["mix"], r["inflight"], r["ops_per_sec"],
        fmt(r.get("p50_ms"), ".2f"), fmt(r.get("p99_ms"), ".2f"), fmt(r.get("p999_ms"), ".2f"),
        r.get("errors", ""), fmt(r.get("cpu_us_per_op"), ".0f"),
        fmt(r.get("fsyncs_per_sec_per_server"), ".0f"), fmt(r.get("writes_per_fsync"), ".1f")))
EOF
