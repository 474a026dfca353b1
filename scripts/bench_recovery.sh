#!/usr/bin/env bash
# Recovery benchmarks with release builds of aerie and of the benchmark driver:
#   scripts/bench_recovery.sh failover [TRIALS]   time until every partition takes writes after a SIGKILL
#   scripts/bench_recovery.sh meta-failover [TRIALS]  SIGKILL the leader of 3 metas on ZooKeeper:
#                                                 time to a new leader, longest write pause
#   scripts/bench_recovery.sh learning [GIB]      learning speed of a ~GIB partition, foreground p99
#   scripts/bench_recovery.sh scale-out [GIB]     3 -> 5 replica servers: time to balance, bytes copied
#   scripts/bench_recovery.sh rolling-update [GIB]  aerie rolling-update against plain restarts under
#                                                 workload A: roll time, stalls, failed requests, p99
# The processes run on loopback ports with temporary data dirs; results go to standard output.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/env.sh
ensure_build_packages
# A separate target dir: release builds would otherwise invalidate the test builds' cache.
export CARGO_TARGET_DIR="${AERIE_RELEASE_TARGET_DIR:-$HOME/.cache/aerie/release-target}"
cargo build --release --locked -p aerie -p aerie-tests --bin aerie --bin bench-recovery
AERIE_TEST_BIN="$CARGO_TARGET_DIR/release/aerie" exec "$CARGO_TARGET_DIR/release/bench-recovery" "$@"
