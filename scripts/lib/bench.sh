# Shared by the benchmark scripts (bench_vs_etcd.sh, bench_ab.sh): the packages and the load
# generator they need, the Aerie cluster they measure, and the CPU its processes use.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Installs the Debian packages among the arguments that are missing.
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    ((${#missing[@]} == 0)) && return 0
    echo "installing Debian packages: ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }
}

# Builds the load generator (bench/kvbench, its own workspace) and sets `kvbench` to its path.
# protobuf-compiler and libprotobuf-dev (its well-known types): the etcd client's gRPC code is
# generated at build time.
build_kvbench() {
    ensure_build_packages
    ensure_packages protobuf-compiler libprotobuf-dev
    CARGO_TARGET_DIR="$HOME/.cache/aerie/kvbench-target" cargo build --release --locked \
        --manifest-path bench/kvbench/Cargo.toml
    kvbench="$HOME/.cache/aerie/kvbench-target/release/kvbench"
}

# The benchmarks' Aerie cluster: 1 meta on 127.0.3.1 and 3 replica servers on 127.0.3.11-13,
# separate processes of BIN with their data and logs under DIR, and any `--set k=v` arguments after
# DIR. Appends their pids to the array `pids`; sets `bench_meta` and the array `bench_replicas`.
# Returns once every replica server holds a lease (at most 60 s each), or exits.
start_bench_cluster() {
    local bin=$1 dir=$2 i addr
    shift 2
    bench_meta=127.0.3.1:34601
    bench_replicas=()
    local common=(--set "meta_server.server_list=$bench_meta" "$@")
    "$bin" --role meta "${common[@]}" --set "meta_server.address=$bench_meta" \
        --set "meta_server.data_dir=$dir/meta" --set network.source_address=127.0.3.1 \
        >"$dir/meta.log" 2>&1 &
    pids+=($!)
    for i in 11 12 13; do
        addr=127.0.3.$i:34801
        "$bin" --role replica "${common[@]}" --set "replication.address=$addr" \
            --set "replication.data_dirs=default:$dir/replica$i" --set "network.source_address=127.0.3.$i" \
            >"$dir/replica$i.log" 2>&1 &
        pids+=($!)
        bench_replicas+=("$addr")
    done
    for addr in "${bench_replicas[@]}"; do
        local deadline=$((SECONDS + 60))
        until curl -fsS "http://$addr/health" >/dev/null 2>&1; do
            ((SECONDS < deadline)) || { echo "replica server $addr did not get a lease in 60 s" >&2; exit 1; }
            sleep 0.2
        done
    done
}

# Sum of one counter (all label sets) over the /metrics pages of the given host:port list.
metric_sum() {
    local name=$1
    shift
    local addr
    for addr in "$@"; do curl -fsS "http://$addr/metrics"; done |
        awk -v n="$name" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

# utime + stime of the given pids, in microseconds.
cpu_micros() {
    local total=0 pid stat
    for pid in "$@"; do
        read -r -a stat <"/proc/$pid/stat"
        # Fields 14 and 15 (utime, stime); the command name in field 2 has no spaces here.
        total=$((total + stat[13] + stat[14]))
    done
    echo $((total * 1000000 / $(getconf CLK_TCK)))
}
