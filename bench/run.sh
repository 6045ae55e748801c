#!/usr/bin/env bash
# The itsmd benchmark: builds the release daemon, starts it with the shipped rules on a temp
# data dir, and a real Prometheus Alertmanager (Debian's prometheus-alertmanager), both on
# loopback; drives both with wrk and the same bodies; prints rates, itsmd's rate as a ratio of
# Alertmanager's, latencies, peak RSS, data-dir size and tickets created.
#
#   bash bench/run.sh                 # DURATION=15s CONNS=16 THREADS=2 by default
#
# Needs wrk and prometheus-alertmanager (apt-get install wrk prometheus-alertmanager).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
ITSMD_PORT=${ITSMD_PORT:-18080}
AM_PORT=${AM_PORT:-19093}

for tool in wrk prometheus-alertmanager; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk prometheus-alertmanager"; exit 1; }
done
cargo build --release --quiet
bin=target/release/itsmd
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" --log-format json serve --config bench/itsmd-bench.toml --listen "127.0.0.1:$ITSMD_PORT" \
  --data-dir "$work/data" --rules-dir rules 2>"$work/itsmd.log" &
itsmd_pid=$!; pids+=("$itsmd_pid")
prometheus-alertmanager --config.file=bench/alertmanager.yml --web.listen-address="127.0.0.1:$AM_PORT" \
  --cluster.listen-address= --storage.path="$work/am" --log.level=warn 2>"$work/am.log" &
am_pid=$!; pids+=("$am_pid")
for url in "http://127.0.0.1:$ITSMD_PORT/readyz" "http://127.0.0.1:$AM_PORT/-/ready"; do
  for _ in $(seq 100); do curl -sf "$url" >/dev/null && break; sleep 0.1; done
done

# wrk's summary → "rate p50 p99 max non2xx total"
run() { # name url script args…
  local name=$1 url=$2 script=$3; shift 3
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "bench/$script" "$url" -- "$@")
  echo "$out" > "$work/$name.wrk"
  local rps p50 p99 max non2xx total
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  max=$(awk '$1=="Latency" {print $4}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$rps $p50 $p99 $max $non2xx $total"
}
starts=$(date -u +%Y-%m-%dT%H:%M:%SZ)

printf '%-44s %12s %9s %9s %9s %8s\n' scenario "alerts/s" p50 p99 max non-2xx
report() { # label alerts-per-request result…
  local label=$1 per=$2 rps=$3 p50=$4 p99=$5 max=$6 non2xx=$7
  printf '%-44s %12.0f %9s %9s %9s %8s\n' "$label" "$(echo "$rps * $per" | bc -l)" "$p50" "$p99" "$max" "$non2xx"
}
read -r a_i p50 p99 max bad _ < <(run a_itsmd "http://127.0.0.1:$ITSMD_PORT" prom_batches.lua "$starts")
report "(a) batches of 100, itsmd" 100 "$a_i" "$p50" "$p99" "$max" "$bad"
read -r a_am p50 p99 max bad _ < <(run a_am "http://127.0.0.1:$AM_PORT" prom_batches.lua "$starts")
report "(a) batches of 100, Alertmanager" 100 "$a_am" "$p50" "$p99" "$max" "$bad"
read -r b_i p50 p99 max bad _ < <(run b_itsmd "http://127.0.0.1:$ITSMD_PORT" single.lua pagerduty)
report "(b) single PagerDuty events, itsmd" 1 "$b_i" "$p50" "$p99" "$max" "$bad"
read -r b_am p50 p99 max bad _ < <(run b_am "http://127.0.0.1:$AM_PORT" single.lua am)
report "(b) single alerts, Alertmanager" 1 "$b_am" "$p50" "$p99" "$max" "$bad"
read -r c_i p50 p99 max bad c_total < <(run c_itsmd "http://127.0.0.1:$ITSMD_PORT" storm.lua "$$")
report "(c) storm of distinct keys, itsmd" 1 "$c_i" "$p50" "$p99" "$max" "$bad"

echo
printf 'ratio itsmd / Alertmanager: (a) %.2f  (b) %.2f\n' "$(echo "$a_i / $a_am" | bc -l)" "$(echo "$b_i / $b_am" | bc -l)"
echo "itsmd peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$itsmd_pid/status")"
echo "itsmd data dir: $(du -sm "$work/data" | cut -f1) MiB"
tickets=$(curl -s "http://127.0.0.1:$ITSMD_PORT/metrics" | awk '/^itsmd_tickets\{/ {s += $2} END {print s}')
expected=$((1000 + 1000 + c_total - bad))
echo "tickets created: $tickets (distinct keys sent: $expected)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"
