#!/usr/bin/env bash
# Aerie's whole test suite, exactly as CI runs it, on a fresh Debian machine with Rust:
# installs the packages the build needs, checks formatting and lints, and runs every test
# (unit, property, and process tests that start real aerie processes on loopback ports).
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p aerie-storage).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/env.sh

ensure_build_packages
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The benchmark's own workspace (not built here): its lock file must still match the crates it uses.
cargo metadata --format-version 1 --locked --manifest-path bench/kvbench/Cargo.toml >/dev/null
# The process tests run target/debug/aerie: build it before they start.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
