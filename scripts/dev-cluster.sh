#!/usr/bin/env bash
# Builds Aerie (installing the packages the build needs) and runs a development cluster in one
# process: one meta server on 127.0.0.1:34601, three replica servers on 127.0.0.1:34801-34803,
# data under ./data/dev. Stop it with Ctrl-C (a clean shutdown). Arguments go to aerie, e.g.
# scripts/dev-cluster.sh --data-dir /tmp/aerie or scripts/dev-cluster.sh -c config/dev.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/env.sh

ensure_build_packages
cargo build -p aerie --locked
echo "starting aerie --role all; in another terminal: scripts/aerie shell"
exec "$CARGO_TARGET_DIR/debug/aerie" --role all "$@"
