#!/usr/bin/env bash
# Backup and restore throughput, release build, on this machine: fills a release store
# through the ingest write path to about MB megabytes of archive, then times the snapshot
# (how long writes are held back), writing and checking the archive, and the restore
# (collector/store/examples/backup_bench.rs prints the figures).
#
#   bench/backup.sh            # MB = 300
#   bench/backup.sh 1000 /big  # 1 GB, scratch space under /big
set -euo pipefail

MB="${1:-300}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p bellwether-store --example backup_bench
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
"$TARGET/release/examples/backup_bench" "$MB" ${2:+"$2"}
