#!/usr/bin/env bash
# Reruns the comparison: ROUNDS rounds, each running every variant once (order rotated per round),
# each run a fresh process on a fresh database file. Results go to results/<tag>.log.
# Usage: ./run.sh [tag] [rounds] [extra args for the binary, e.g. --sync OFF]
set -euo pipefail
cd "$(dirname "$0")"
tag=${1:-full}; rounds=${2:-3}; shift $(( $# >= 2 ? 2 : $# )) || true
VARIANTS=(${VARIANTS:-sqlx rusqlite sqlx-nosp rusqlite-nosp sqlx-any})
cargo build --release --quiet
mkdir -p results
log=results/$tag.log
: > "$log"
n=${#VARIANTS[@]}
for ((r = 1; r <= rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    v=${VARIANTS[$(( (i + r - 1) % n ))]}
    echo "round $r: $v" >&2
    ./target/release/sqlite_floor "$v" --secs 10 --warmup 2 --tasks 64 \
      --db /tmp/sqlite-floor-bench.db --quiet-wait 120 "$@" 2>>results/$tag.stderr \
      | sed "s/^RESULT /RESULT round=$r /" | tee -a "$log"
  done
done
rm -f /tmp/sqlite-floor-bench.db /tmp/sqlite-floor-bench.db-wal /tmp/sqlite-floor-bench.db-shm
python3 summarize.py "$log"
