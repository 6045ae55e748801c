#!/usr/bin/env bash
# Closed-loop capacity of one node on PostgreSQL (docs/performance.md, issue 20): wrk with
# CONNS connections for SECS s posting alerts over KEYS keys (0: every alert a new key), to
# a node without cluster mode (single) and in cluster mode (cluster: acknowledged once in the
# shared inbox; drain_ms is how long the leader took to process the rest afterwards).
# Complements bench/cluster.sh (open loop, needs the probe built in the bench profile).
#
#   bash bench/cluster_capacity.sh [BIN]       # default: the release binary
#   RUNS=3 SECS=10 CONNS=64 bash bench/cluster_capacity.sh /tmp/itsmd-before
#
# Needs wrk (apt-get install wrk). Uses $ITSMD_TEST_PG_URL if set, else a throwaway server.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/itsmd}
RUNS=${RUNS:-3} SECS=${SECS:-10} CONNS=${CONNS:-64}
if [ -z "${ITSMD_TEST_PG_URL:-}" ]; then
  eval "$(bash .ci/postgres.sh)"
  trap 'bash .ci/postgres.sh stop "$ITSMD_TEST_PG_DIR"' EXIT
fi
psql=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
sql() { "$psql" "$ITSMD_TEST_PG_URL dbname=${2:-postgres}" -qAt -c "$1"; }
echo "synchronous_commit = $(sql 'SHOW synchronous_commit'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
one() { # mode keys
  local mode=$1 keys=$2 db=cap_$RANDOM d port pid line t0 drain batch cluster=false
  [ "$mode" = cluster ] && cluster=true
  sql "CREATE DATABASE $db"
  d=$(mktemp -d)
  cat >"$d/c.toml" <<EOC
[server]
ingest_rate_per_sec = 0
max_concurrent_requests = 4096
[store]
backend = "postgres"
url = "$ITSMD_TEST_PG_URL dbname=$db"
[cluster]
enabled = $cluster
node = "a"
EOC
  port=$((18400 + RANDOM % 500))
  "$bin" --log-format json serve --config "$d/c.toml" --listen "127.0.0.1:$port" \
    --data-dir "$d/data" --rules-dir rules 2>"$d/log" &
  pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  if [ "$cluster" = true ]; then
    for _ in $(seq 300); do curl -s "http://127.0.0.1:$port/healthz" | grep -q '"role":"leader"' && break; sleep 0.1; done
  fi
  line=$(KEYS=$keys PREFIX=r$RANDOM wrk -t1 -c"$CONNS" -d"${SECS}s" -s bench/cluster_capacity.lua \
    "http://127.0.0.1:$port" | tail -n 1)
  t0=$(date +%s%N)
  if [ "$cluster" = true ]; then
    until [ "$(sql "SELECT count(*) FROM itsmd_inbox WHERE answered_at IS NULL" "$db")" = 0 ]; do sleep 0.1; done
  fi
  drain=$(( ($(date +%s%N) - t0) / 1000000 ))
  batch=$(curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^itsmd_batch_size_sum/{s=$2} /^itsmd_batch_size_count/{c=$2} END{if (c>0) printf "%.0f", s/c; else print 0}')
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  sql "DROP DATABASE $db"
  rm -rf "$d"
  echo "$mode keys=$keys $line drain_ms=$drain mean_batch=$batch"
}
for _ in $(seq "$RUNS"); do
  for mode in single cluster; do
    for keys in 1000 0; do one "$mode" "$keys"; done
  done
done
