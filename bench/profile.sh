#!/bin/bash
# Where the CPU time of one event goes: starts the release itsmd (bench/itsmd-bench.toml, the
# shipped rules, a temp data dir) on PROFILE_PORT, drives it with wrk (2 threads, 16
# connections, 20 s) with one of the bench/*.lua scripts, and records 8 s of it with
# `perf record --call-graph dwarf` (after 5 s of warm-up). Prints the daemon's CPU time per
# event over the recording, the engine's commit stages per event (wall time, whole run) and
# the inclusive share of the hot-path functions (perf report --children).
#
#   bash bench/profile.sh single single.lua pagerduty   # (b) single PagerDuty events
#   bash bench/profile.sh storm storm.lua $$ itsmd      # (c) a storm of new keys
#
# Needs perf (apt-get install linux-perf) and wrk; run after `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 script=$2; shift 2
port=${PROFILE_PORT:-18180}
bin=${CARGO_TARGET_DIR:-target}/release/itsmd
out=${PROFILE_OUT:-$(mktemp -d)}
url="http://127.0.0.1:$port"
work=$(mktemp -d)
"$bin" --log-format json serve --config bench/itsmd-bench.toml --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --rules-dir rules 2>"$work/itsmd.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
events() { curl -sf "$url/metrics" | awk '/^itsmd_batch_size_sum/ {print $2 + 0}'; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
wrk -t2 -c16 -d20s --latency -s "bench/$script" "$url" -- "$@" >"$out/$name.wrk" &
wrk_pid=$!
sleep 5 # warm-up before recording, not synchronisation
t0=$(ticks) e0=$(events)
perf record -F 499 --call-graph dwarf,32768 -p "$pid" -o "$out/$name.data" -- sleep 8 2>"$out/$name.perf.log"
t1=$(ticks) e1=$(events)
wait "$wrk_pid"
curl -sf "$url/metrics" >"$out/$name.metrics"
cpu_us=$(echo "($t1 - $t0) / $(getconf CLK_TCK) * 1000000 / ($e1 - $e0)" | bc -l)
printf '%s: %.0f events/s (wrk), CPU %.0f µs per event (all threads)\n' "$name" \
  "$(awk '/^Requests\/sec:/ {print $2}' "$out/$name.wrk")" "$cpu_us"
awk '/^itsmd_batch_size_sum/ {e = $2} /^itsmd_batch_size_count/ {b = $2}
  /^itsmd_commit_stage_seconds_total/ {split($1, a, "\""); s[a[2]] = $2}
  END {printf "events per batch %.1f; per event (wall): process %.0f µs, apply %.0f µs, flush %.0f µs\n",
    e / b, s["process"] / e * 1e6, s["apply"] / e * 1e6, s["flush"] / e * 1e6}' "$out/$name.metrics"
perf report -i "$out/$name.data" --no-children -g none --no-inline --sort comm --stdio 2>/dev/null |
  awk '/%/ {c = $2; sub(/-[0-9]+$/, "", c); s[c] += $1} END {for (k in s) printf "thread %s: %.1f %% of samples\n", k, s[k]}'
perf report -i "$out/$name.data" --children --no-inline -g none --sort sym --stdio 2>/dev/null |
  grep -E 'Engine::(execute|process)$|Engine>::alert$|Rules::on_alert|Txn::(ticket|prefetch|append_history)$|Ticket as core::clone|sla_after_event|index_entries|codec::(en|de)code$|apply_batch|Store>::flush|http1::Connection<I,S> as|Http1Transaction>::parse|poll_write|intake::(pagerduty|generic)::parse|limits::shed::\{\{closure' |
  awk -v cpu="$cpu_us" '{printf "%6.1f %%  %6.1f µs  %s\n", $1, $1 * cpu / 100, substr($0, index($0, "[.]") + 4)}'
echo "perf data and wrk output in $out"
