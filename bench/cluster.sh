#!/usr/bin/env bash
# itsmd on PostgreSQL, one node and three (docs/performance.md, "PostgreSQL and cluster"):
# starts a throwaway PostgreSQL cluster (.ci/postgres.sh) and, on a fresh database each:
#
#   single   one node, [store] backend = "postgres" without cluster mode (one writer, unfenced)
#   one      one node in cluster mode (intake → shared inbox → the leader's engine)
#   three    three nodes in cluster mode; the probe sends to all three at once, RATE/3 each
#
# For each: single /api/v1/events over KEYS keys (mostly updates), then new incidents (every
# alert a new key), open loop at RATE/s for SECS s (probe, benches/probe); ack latency from
# the scheduled send; done/s in cluster mode (acknowledged once in the shared inbox): the run's
# events over the time until the leader has processed them all. Then failover: KILLS times SIGKILL the leader of three nodes, time until
# another node's /healthz says "leader" (and restart the killed one); p50 and max.
#
#   bash bench/cluster.sh
#   RATE=3000 SECS=5 KILLS=5 bash bench/cluster.sh
#   SYNC=off bash bench/cluster.sh      # synchronous_commit = off (acknowledged ≠ durable!)
#   NO_BUILD=1 bash bench/cluster.sh    # the release binaries as last built
#   ITSMD_BIN=/tmp/itsmd NO_BUILD=1 bash bench/cluster.sh   # another daemon binary
#   IDLE=0 bash bench/cluster.sh        # skip the idle cluster's 30 s count of transactions
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-5000}
SECS=${SECS:-10}
KEYS=${KEYS:-1000}
KILLS=${KILLS:-5}
IDLE=${IDLE:-30}
SYNC=${SYNC:-on}
PARTS=${PARTS:-single one three failover}
base_port=${BASE_PORT:-18180}
has() { [[ " $PARTS " == *" $1 "* ]]; }

bin=${ITSMD_BIN:-${CARGO_TARGET_DIR:-target}/release/itsmd}
if [ -z "${NO_BUILD:-}" ]; then
  echo "building…" >&2
  cargo build --release --quiet
  probe=$(cargo bench --no-run --bench probe 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p')
else # NO_BUILD=1: the release daemon and probe as last built
  probe=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/probe-* | grep -v '\.d$' | head -n 1)
fi
[ -x "$probe" ] || { echo "could not build the probe (cargo bench --no-run --bench probe)"; exit 1; }
eval "$(bash .ci/postgres.sh)"
psql_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash .ci/postgres.sh stop "$ITSMD_TEST_PG_DIR"
  rm -rf "$work"
}
trap cleanup EXIT
sql() { "$psql_bin" "$ITSMD_TEST_PG_URL dbname=${2:-postgres}" -qAt -c "$1"; }
sql "ALTER SYSTEM SET synchronous_commit = '$SYNC'" && sql "SELECT pg_reload_conf()" >/dev/null
summary=()
out() { summary+=("$(printf "$@")"); }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

config() { # db node cluster(true|false) → config file
  local f="$work/$2.toml"
  cat >"$f" <<EOF
[server]
ingest_rate_per_sec = 0
max_concurrent_requests = 4096
[store]
backend = "postgres"
url = "$ITSMD_TEST_PG_URL dbname=$1"
[cluster]
enabled = $3
node = "$2"
EOF
  echo "$f"
}
declare -A node_pid node_port
start_node() { # db node port cluster
  "$bin" --log-format json serve --config "$(config "$1" "$2" "$4")" --listen "127.0.0.1:$3" \
    --data-dir "$work/data-$2" --rules-dir rules 2>>"$work/$2.log" &
  node_pid[$2]=$!; node_port[$2]=$3; pids+=("$!")
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$3/healthz" >/dev/null && return; sleep 0.05
  done
  echo "node $2 not up (see $work/$2.log)"; exit 1
}
stop_all() { for n in "${!node_pid[@]}"; do kill -TERM "${node_pid[$n]}" 2>/dev/null || true; wait "${node_pid[$n]}" 2>/dev/null || true; done; node_pid=(); node_port=(); }
role() { curl -s -m 1 "http://127.0.0.1:${node_port[$1]}/healthz" | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p'; }
wait_leader() { # → the leading node's name
  for _ in $(seq 1000); do
    for n in "${!node_pid[@]}"; do [ "$(role "$n")" = leader ] && { echo "$n"; return; }; done
    sleep 0.01
  done
  echo "no leader" >&2; exit 1
}

run_probes() { # label kind keys nodes… : the probe to every node at RATE/#nodes, in parallel
  local label=$1 keys=$2; shift 2
  local n=$# each ok=0 p50=0 p99=0 max=0 non2xx=0 files=() running=()
  each=$(awk -v r="$RATE" -v n="$n" 'BEGIN{printf "%.0f", r/n}')
  for node in "$@"; do
    "$probe" rate --url "http://127.0.0.1:${node_port[$node]}" --kind events --rate "$each" \
      --secs "$SECS" --keys "$keys" --prefix "p$RANDOM$node" >"$work/probe-$node" &
    files+=("$work/probe-$node"); running+=("$!")
  done
  for p in "${running[@]}"; do wait "$p"; done
  for f in "${files[@]}"; do
    local l; l=$(cat "$f")
    echo "  $label $(basename "$f"): $l" >&2
    ok=$((ok + $(field ok_per_s "$l")))
    non2xx=$((non2xx + $(field non2xx "$l") + $(field errors "$l")))
    p50=$(awk -v a="$p50" -v b="$(field p50 "$l")" 'BEGIN{print (b>a)?b:a}')
    p99=$(awk -v a="$p99" -v b="$(field p99 "$l")" 'BEGIN{print (b>a)?b:a}')
    max=$(awk -v a="$max" -v b="$(field max "$l")" 'BEGIN{print (b>a)?b:a}')
  done
  # Cluster mode acknowledges once the inbox insert commits: processed/s counts until the
  # leader has answered every inbox row (the whole run's events over SECS plus the drain).
  local processed=$ok
  if [ "$cur_cluster" = true ]; then
    local t0 t1
    t0=$(date +%s%N)
    until [ "$(sql "SELECT count(*) FROM itsmd_inbox WHERE answered_at IS NULL" "$cur_db")" = 0 ]; do
      sleep 0.1
    done
    t1=$(date +%s%N)
    processed=$(awk -v ok="$ok" -v s="$SECS" -v d="$(( (t1 - t0) / 1000000 ))" \
      'BEGIN{printf "%.0f", ok * s / (s + d / 1000)}')
  fi
  out '%-44s %8s %8s %9s %9s %9s %9s %7s' "$label" "$RATE" "$ok" "$processed" "$p50" "$p99" "$max" "$non2xx"
}

scenario() { # name cluster nodes…
  local name=$1 cluster=$2; shift 2
  local db="bench_${name}"
  cur_db=$db cur_cluster=$cluster
  sql "DROP DATABASE IF EXISTS $db" && sql "CREATE DATABASE $db"
  local port=$base_port
  for n in "$@"; do start_node "$db" "$n" "$port" "$cluster"; port=$((port + 1)); done
  [ "$cluster" = true ] && wait_leader >/dev/null
  local before_commits
  before_commits=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
  run_probes "$name: events ($KEYS keys)" "$KEYS" "$@"
  run_probes "$name: new incidents" $((RATE * SECS * 2)) "$@"
  local tickets
  for n in "$@"; do # where the engine's time went (the leader's figures; followers' are 0)
    curl -s "http://127.0.0.1:${node_port[$n]}/metrics" |
      grep -E '^itsmd_(batch_size|batch_round_trips|commit_seconds)_(sum|count)|^itsmd_commit_stage_seconds' |
      sed "s/^/  $name $n: /" >&2
  done
  tickets=$(sql "SELECT count(*) FROM itsmd_tickets" "$db")
  out '%-44s tickets %s, commits %s' "  $name: after both runs" "$tickets" \
    "$(( $(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'") - before_commits ))"
  if [ "$cluster" = true ] && [ "$IDLE" -gt 0 ]; then
    # Idle: no intake for IDLE s; transactions the nodes commit meanwhile (lease renewals).
    local c0 c1
    c0=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
    sleep "$IDLE"
    c1=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
    out '%-44s %s transactions/min with %s node(s) idle' "  $name: idle" $(( (c1 - c0) * 60 / IDLE )) "$#"
  fi
  stop_all
}

out '%-44s %8s %8s %9s %9s %9s %9s %7s' "scenario (synchronous_commit=$SYNC)" "offered" "acked/s" "done/s" "p50 ms" "p99 ms" "max ms" "failed"
has single && scenario single false a
has one && scenario one true a
has three && scenario three true a b c

if has failover; then
  db=bench_failover
  sql "DROP DATABASE IF EXISTS $db" && sql "CREATE DATABASE $db"
  start_node "$db" a "$base_port" true
  start_node "$db" b $((base_port + 1)) true
  start_node "$db" c $((base_port + 2)) true
  times=()
  for i in $(seq "$KILLS"); do
    leader=$(wait_leader)
    # Let the new term settle (renewals under way) before the next kill.
    sleep 1
    t0=$(date +%s%N)
    kill -9 "${node_pid[$leader]}"; wait "${node_pid[$leader]}" 2>/dev/null || true
    port=${node_port[$leader]}; unset "node_pid[$leader]"
    next=$(wait_leader)
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    echo "  kill $i: $leader → $next in $ms ms" >&2
    times+=("$ms")
    start_node "$db" "$leader" "$port" true
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  p50=$(sed -n "$(( (KILLS + 1) / 2 ))p" <<<"$sorted")
  max=$(tail -n 1 <<<"$sorted")
  out 'failover after SIGKILL of the leader (3 nodes, lease 3 s, renew 1 s), %s kills: p50 %s ms, max %s ms (all: %s)' \
    "$KILLS" "$p50" "$max" "$(tr '\n' ' ' <<<"$sorted")"
  stop_all
fi

echo
echo "itsmd on PostgreSQL ($(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)), RATE=$RATE SECS=$SECS"
printf '%s\n' "${summary[@]}"
