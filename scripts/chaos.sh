#!/usr/bin/env bash
# Faults, one after another, against a real cluster (3 metas on ZooKeeper, 4 replica servers,
# each process on its own loopback address) under client load; every round's history is checked
# for linearizability per key and the replicas for identical checksums. Needs root (nftables).
#   scripts/chaos.sh [--seconds 3600] [--scenario all|kill,stop,cut-meta,cut-peers,meta-kill,rolling-restart]
#                    [--seed N] [--clients 4]
# Exit code 0: every round clean; 1: a round failed (its report and the kept data dir are printed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/env.sh
ensure_build_packages
cargo build --locked -p aerie -p aerie-tests --bin aerie --bin chaos
AERIE_TEST_BIN="$CARGO_TARGET_DIR/debug/aerie" exec "$CARGO_TARGET_DIR/debug/chaos" "$@"
