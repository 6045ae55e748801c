#!/usr/bin/env bash
# The itsmd benchmark, one command: builds the release daemon and the load probe
# (benches/probe), starts itsmd with the shipped rules on a temp data dir and Maildir, and
# Debian's Prometheus Alertmanager, both on loopback, then runs the parts named in PARTS, in
# this order, and prints one summary at the end (docs/performance.md says what each means):
#
#   open   open loop (probe): fixed offered rates (RATES) of single PagerDuty events and
#          /api/v1/events to itsmd, single alerts to Alertmanager; ack latency p50/p99/max
#          from each request's scheduled send time
#   mixed  (d) alerts at MIXED_RATE/s plus MAIL_RATE mails/s delivered into the Maildir
#   wrk    closed loop (wrk, the same bodies to both): (a) Prometheus batches of 100,
#          (b) single events (PagerDuty triggers to itsmd), (b') the very one-alert
#          Prometheus body (b) sends Alertmanager, to itsmd too, (c) a storm of distinct keys
#          (new alerts to Alertmanager); itsmd's rate / Alertmanager's for each
#   e2e    a fresh itsmd with a vendor that is the probe: new-key alerts at RATES, each
#          incident's webhook verified by the probe's loopback receiver; ack and end-to-end
#          latency p50/p99/max from the scheduled send
#   big    a fresh itsmd takes BIG_PASSES × BIG_KEYS Prometheus alerts (1,000,000 into
#          100,000 tickets); peak RSS, data dir, tickets, the top rate of RATES offered to
#          that store, then SIGTERM and restart to ready; then as much again, a quiet
#          checkpoint (store.checkpoint_mb), and restart to ready once more
#
#   bash bench/run.sh                         # everything (about 15 minutes on 2 cores)
#   PARTS="open mixed" SECS=5 bash bench/run.sh
#
# Needs wrk and prometheus-alertmanager (apt-get install wrk prometheus-alertmanager).
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${PARTS:-open mixed wrk e2e big}
DURATION=${DURATION:-15s}      # wrk: per scenario
CONNS=${CONNS:-16}             # wrk: connections; the big run's senders
THREADS=${THREADS:-2}          # wrk: threads
SECS=${SECS:-10}               # probe: seconds per fixed-rate run and of the mixed stream
RATES=${RATES:-1000 5000}      # probe: offered alerts/s
MIXED_RATE=${MIXED_RATE:-1000} # (d): alerts/s (/api/v1/events)
MAIL_RATE=${MAIL_RATE:-20}     # (d): mails/s
BIG_KEYS=${BIG_KEYS:-100000}   # big: distinct keys = tickets expected
BIG_PASSES=${BIG_PASSES:-10}   # big: times every key is sent
ITSMD_PORT=${ITSMD_PORT:-18080}
AM_PORT=${AM_PORT:-19093}
E2E_PORT=${E2E_PORT:-18090}   # e2e: the probe's webhook receiver
E2E_IN_FLIGHT=${E2E_IN_FLIGHT:-64} # e2e: the vendor's max_in_flight (the default is 4)
itsmd_url="http://127.0.0.1:$ITSMD_PORT"
am_url="http://127.0.0.1:$AM_PORT"

for tool in wrk prometheus-alertmanager curl bc; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk prometheus-alertmanager curl bc"; exit 1; }
done
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$ITSMD_PORT" "$AM_PORT" "$E2E_PORT"; do
  port_free "$port" || { echo "port $port is in use (another benchmark?): set ITSMD_PORT / AM_PORT"; exit 1; }
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "building…" >&2
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/itsmd
probe=$(cargo bench --no-run --bench probe 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p')
[ -x "$probe" ] || { echo "could not build the probe (cargo bench --no-run --bench probe)"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
summary=()
out() { summary+=("$(printf "$@")"); }
has() { [[ " $PARTS " == *" $1 "* ]]; }

# --- processes -------------------------------------------------------------------------------

start_itsmd() { # data-dir [extra args…]; sets itsmd_pid
  local data=$1; shift
  "$bin" --log-format json serve --config bench/itsmd-bench.toml --listen "127.0.0.1:$ITSMD_PORT" \
    --data-dir "$data" --rules-dir rules "$@" 2>>"$work/itsmd.log" &
  itsmd_pid=$!; pids+=("$itsmd_pid")
}
start_am() { # sets am_pid
  prometheus-alertmanager --config.file=bench/alertmanager.yml --web.listen-address="127.0.0.1:$AM_PORT" \
    --cluster.listen-address= --storage.path="$work/am" --log.level=warn 2>"$work/am.log" &
  am_pid=$!; pids+=("$am_pid")
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; } # pid: SIGTERM, wait for the exit
wait_ready() { # url pid: ready, and answered by that process (not another on the same port)
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || { echo "$1: the process exited (see its log)"; exit 1; }
    curl -sf "$1" >/dev/null && return; sleep 0.1
  done
  echo "$1 not ready"; exit 1
}
proc_mib() { awk -v f="$2:" '$1 == f {printf "%.0f", $2/1024}' "/proc/$1/status"; } # pid VmHWM|VmRSS
dir_mib() { du -sm "$1" | cut -f1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # pid: user + system CPU, in ticks
now_ns() { date +%s%N; }
cores() { # pid ticks-before ns-before: the pid's CPU use since then, in cores
  echo "scale=2; ($(cpu_ticks "$1") - $2) / $(getconf CLK_TCK) / (($(now_ns) - $3) / 1000000000)" | bc -l
}
tickets() { curl -sf "$itsmd_url/metrics" | awk '/^itsmd_tickets\{/ {s += $2} END {printf "%d", s}'; }
checkpoints() { curl -sf "$itsmd_url/metrics" | awk '/^itsmd_store_checkpoints_total / {n = $2} END {printf "%d", n}'; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; } # name line: a probe line's value

# --- wrk: closed loop (a) (b) (c) ------------------------------------------------------------

wrk_run() { # name url script args… → "rate p50 p99 max non2xx total keys" (wrk's summary;
  # keys: what the script says it sent, else the answered requests)
  local name=$1 url=$2 script=$3; shift 3
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "bench/$script" "$url" -- "$@")
  echo "$out" > "$work/$name.wrk"
  local rps p50 p99 max non2xx total keys
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  max=$(awk '$1=="Latency" {print $4}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  keys=$(awk '/^Keys sent:/ {print $3}' <<<"$out"); keys=${keys:-$total}
  echo "$rps $p50 $p99 $max $non2xx $total $keys"
}
wrk_row() { # label alerts-per-request rps p50 p99 max non2xx
  out '%-44s %10.0f %9s %9s %9s %8s' "$1" "$(echo "$3 * $2" | bc -l)" "$4" "$5" "$6" "$7"
}
part_wrk() {
  echo "wrk: (a) (b) (b') (c), $DURATION each…" >&2
  local starts a_i a_am b_i b_am b2_i c_i c_am p50 p99 max bad c_total c_keys
  starts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  out '== closed loop: wrk, %s threads, %s connections, %s per scenario ==' "$THREADS" "$CONNS" "$DURATION"
  out '%-44s %10s %9s %9s %9s %8s' scenario "alerts/s" p50 p99 max non-2xx
  read -r a_i p50 p99 max bad _ < <(wrk_run a_itsmd "$itsmd_url" prom_batches.lua "$starts")
  wrk_row "(a) batches of 100, itsmd" 100 "$a_i" "$p50" "$p99" "$max" "$bad"
  read -r a_am p50 p99 max bad _ < <(wrk_run a_am "$am_url" prom_batches.lua "$starts")
  wrk_row "(a) batches of 100, Alertmanager" 100 "$a_am" "$p50" "$p99" "$max" "$bad"
  read -r b_i p50 p99 max bad _ < <(wrk_run b_itsmd "$itsmd_url" single.lua pagerduty)
  wrk_row "(b) single PagerDuty events, itsmd" 1 "$b_i" "$p50" "$p99" "$max" "$bad"
  read -r b_am p50 p99 max bad _ < <(wrk_run b_am "$am_url" single.lua am)
  wrk_row "(b) single alerts, Alertmanager" 1 "$b_am" "$p50" "$p99" "$max" "$bad"
  read -r b2_i p50 p99 max bad _ < <(wrk_run b2_itsmd "$itsmd_url" single.lua am)
  wrk_row "(b') the same single alerts, itsmd" 1 "$b2_i" "$p50" "$p99" "$max" "$bad"
  read -r c_i p50 p99 max bad c_total c_keys < <(wrk_run c_itsmd "$itsmd_url" storm.lua "$$" itsmd)
  wrk_row "(c) storm of distinct keys, itsmd" 1 "$c_i" "$p50" "$p99" "$max" "$bad"
  read -r c_am p50 p99 max bad _ < <(wrk_run c_am "$am_url" storm.lua "$$" am)
  wrk_row "(c) storm of distinct keys, Alertmanager" 1 "$c_am" "$p50" "$p99" "$max" "$bad"
  out "ratio itsmd / Alertmanager: (a) %.2f  (b) single events %.2f  (b') the same body %.2f  (c) storm %.2f" \
    "$(echo "$a_i / $a_am" | bc -l)" "$(echo "$b_i / $b_am" | bc -l)" "$(echo "$b2_i / $b_am" | bc -l)" \
    "$(echo "$c_i / $c_am" | bc -l)"
  # Answered storm requests are known keys; those written when wrk stopped may or may not
  # have been read by itsmd, so they bound the count from above.
  expected_keys=$((expected_keys + 1000 + 1000 + 1000 + c_total - bad))
  cut_off=$((c_keys - c_total))
}

# --- open loop: fixed offered rates ----------------------------------------------------------

open_header() { out '%-36s %8s %8s %8s %8s %9s %7s %6s %7s %5s' scenario offered "2xx/s" p50 p99 max non-2xx errors lag_max cores; }
open_row() { # label probe-line cores
  out '%-36s %8s %8s %8s %8s %9s %7s %6s %7s %5s' "$1" "$(field offered "$2")" "$(field ok_per_s "$2")" \
    "$(field p50 "$2")" "$(field p99 "$2")" "$(field max "$2")" "$(field non2xx "$2")" \
    "$(field errors "$2")" "$(field lag_max "$2")" "$3"
}
probe_rate() { # label url pid kind rate prefix; counts itsmd's acknowledged keys
  local line ticks ns
  ticks=$(cpu_ticks "$3"); ns=$(now_ns)
  line=$("$probe" rate --url "$2" --kind "$4" --rate "$5" --secs "$SECS" --prefix "$6")
  open_row "$1" "$line" "$(cores "$3" "$ticks" "$ns")"
  [ "$2" = "$itsmd_url" ] && expected_keys=$((expected_keys + $(field keys "$line")))
  return 0
}
part_open() {
  echo "open loop: rates $RATES, ${SECS}s each…" >&2
  out '== open loop: probe, fixed offered rate, %s s per run; latency (ms) from the scheduled send ==' "$SECS"
  open_header
  local rate
  for rate in $RATES; do
    probe_rate "itsmd, single PagerDuty events" "$itsmd_url" "$main_pid" pagerduty "$rate" "pd$rate"
    probe_rate "itsmd, single /api/v1/events" "$itsmd_url" "$main_pid" events "$rate" "ev$rate"
    probe_rate "Alertmanager, single alerts" "$am_url" "$am_pid" am "$rate" "am$rate"
  done
}

# --- (d) mixed: alerts and mail --------------------------------------------------------------

part_mixed() {
  echo "(d) mixed: $MIXED_RATE alerts/s + $MAIL_RATE mails/s for ${SECS}s…" >&2
  local l ticks ns used
  ticks=$(cpu_ticks "$main_pid"); ns=$(now_ns)
  l=$("$probe" mixed --url "$itsmd_url" --kind events --rate "$MIXED_RATE" --secs "$SECS" \
    --prefix mixed --maildir "$work/Maildir" --mail-rate "$MAIL_RATE")
  used=$(cores "$main_pid" "$ticks" "$ns")
  out '== (d) mixed: %s alerts/s (/api/v1/events) + %s mails/s into the Maildir (tmp/ → new/), %s s ==' \
    "$MIXED_RATE" "$MAIL_RATE" "$SECS"
  open_header
  open_row "itsmd, alerts during mail" "$l" "$used"
  out 'mails delivered %s, in cur/ %s, left in new/ %s; opened (itsmd_mails_processed) %s; request tickets %s' \
    "$(field mails "$l")" "$(field mails_in_cur "$l")" "$(field mails_left_in_new "$l")" \
    "$(field mails_opened "$l")" "$(field request_tickets "$l")"
  out 'mail delivery → cur/ (committed) ms: p50 %s  p99 %s  max %s; last mail committed %s ms after the last delivery' \
    "$(field mail_p50 "$l")" "$(field mail_p99 "$l")" "$(field mail_max "$l")" "$(field mail_last_after_stream "$l")"
  expected_keys=$((expected_keys + $(field keys "$l") + $(field mails_in_cur "$l")))
}

# --- big: 1,000,000 alerts into 100,000 tickets, then restart ---------------------------------

part_big() {
  echo "big: $BIG_PASSES × $BIG_KEYS alerts into a fresh itsmd…" >&2
  local data="$work/big" l hwm size made t0 ready rss hwm2 after stop_ms
  start_itsmd "$data"; wait_ready "$itsmd_url/readyz" "$itsmd_pid"
  l=$("$probe" big --url "$itsmd_url" --keys "$BIG_KEYS" --passes "$BIG_PASSES" --conns "$CONNS")
  hwm=$(proc_mib "$itsmd_pid" VmHWM); made=$(tickets)
  local rate=${RATES##* } ticks ns line used
  echo "big: $rate alerts/s offered to the big store…" >&2
  ticks=$(cpu_ticks "$itsmd_pid"); ns=$(now_ns)
  line=$("$probe" rate --url "$itsmd_url" --kind events --rate "$rate" --secs "$SECS" --prefix big)
  used=$(cores "$itsmd_pid" "$ticks" "$ns")
  t0=$(date +%s%N); stop "$itsmd_pid"; stop_ms=$((($(date +%s%N) - t0) / 1000000))
  size=$(dir_mib "$data")
  echo "big: restart…" >&2
  t0=$(date +%s%N); start_itsmd "$data"
  ready=$("$probe" ready --url "$itsmd_url/readyz" --since-ns "$t0")
  rss=$(proc_mib "$itsmd_pid" VmRSS); hwm2=$(proc_mib "$itsmd_pid" VmHWM); after=$(tickets)
  # The same restart after the store checkpointed in a quiet second (store.checkpoint_mb):
  # offer the top rate again, wait for the checkpoint, stop, start.
  echo "big: writes, a quiet checkpoint, restart…" >&2
  "$probe" rate --url "$itsmd_url" --kind events --rate "$rate" --secs "$SECS" --prefix big2 >/dev/null
  local waited=0 paused
  until [ "$(checkpoints)" -ge 1 ] || [ "$waited" -ge 600 ]; do sleep 0.1; waited=$((waited + 1)); done
  paused=$(curl -sf "$itsmd_url/metrics" | awk '/^itsmd_store_checkpoint_seconds_total / {n = $2} END {printf "%d", n * 1000}')
  stop "$itsmd_pid"
  t0=$(date +%s%N); start_itsmd "$data"
  local quiet_ready
  quiet_ready=$("$probe" ready --url "$itsmd_url/readyz" --since-ns "$t0")
  stop "$itsmd_pid"
  out '== big store: %s alerts (%s passes over %s keys, batches of 100, %s senders) into a fresh itsmd ==' \
    "$(field alerts "$l")" "$BIG_PASSES" "$BIG_KEYS" "$CONNS"
  out 'sent in %s s (the first pass, which opens the tickets, in %s s): %s alerts/s; %s batches retried after 503/429, %s failed' \
    "$(field secs "$l")" "$(field first_pass_secs "$l")" "$(field alerts_per_s "$l")" "$(field retries "$l")" \
    "$(field failed_batches "$l")"
  out 'tickets created %s (distinct keys %s); peak RSS (VmHWM) %s MiB; data dir %s MiB; SIGTERM to exit %s ms' \
    "$made" "$BIG_KEYS" "$hwm" "$size" "$stop_ms"
  open_header
  open_row "itsmd with that store, /api/v1/events" "$line" "$used"
  out 'restart to ready (exec → /readyz 200) %s ms; then RSS %s MiB (VmHWM %s MiB), tickets %s (expected %s)' \
    "$(field ready_ms "$ready")" "$rss" "$hwm2" "$after" "$((made + $(field keys "$line")))"
  out 'after %s s more at %s/s and a quiet checkpoint (%s ms of pause): restart to ready %s ms' \
    "$SECS" "$rate" "$paused" "$(field ready_ms "$quiet_ready")"
}

# --- e2e: alert → incident committed → vendor webhook verified --------------------------------

part_e2e() {
  echo "e2e: rates $RATES, ${SECS}s each, webhooks to the probe's receiver…" >&2
  local data="$work/e2e" rules="$work/e2e-rules" conf="$work/e2e.toml" rate l
  local secret="whsec_$(head -c 24 /dev/urandom | base64)"
  mkdir -p "$rules"; cp rules/*.rhai "$rules/"
  # Every alert that opens or updates an incident notifies the probe (the vendor).
  printf 'fn on_alert(alert, ticket) {\n    ticket.notify("probe");\n}\n' > "$rules/90-e2e.rhai"
  { cat bench/itsmd-bench.toml
    # The receiver is on loopback, which the egress policy refuses unless allowed.
    printf '\n[egress]\nallow = ["127.0.0.1/32"]\n'
    printf '\n[vendors.probe]\nurl = "http://127.0.0.1:%s/hook"\nsecret = "%s"\nmax_in_flight = %s\n' \
      "$E2E_PORT" "$secret" "$E2E_IN_FLIGHT"
  } > "$conf"
  "$bin" --log-format json serve --config "$conf" --listen "127.0.0.1:$ITSMD_PORT" \
    --data-dir "$data" --rules-dir "$rules" 2>>"$work/itsmd-e2e.log" &
  itsmd_pid=$!; pids+=("$itsmd_pid")
  wait_ready "$itsmd_url/readyz" "$itsmd_pid"
  out '== e2e: new-key alerts (/api/v1/events) → incident committed (ack) → webhook verified by the probe, %s s per rate; ms from the scheduled send ==' "$SECS"
  out '%-8s %7s %9s %9s %9s %9s %9s %9s %9s %5s %7s %6s %7s' offered acked ack_p50 ack_p99 ack_max \
    webhooks p50 p99 max bad non-2xx errors lag_max
  for rate in $RATES; do
    l=$("$probe" e2e --url "$itsmd_url" --kind events --rate "$rate" --secs "$SECS" --prefix "e2e$rate" \
      --listen "127.0.0.1:$E2E_PORT" --secret "$secret")
    out '%-8s %7s %9s %9s %9s %9s %9s %9s %9s %5s %7s %6s %7s' "$(field offered "$l")" "$(field acked "$l")" \
      "$(field ack_p50 "$l")" "$(field ack_p99 "$l")" "$(field ack_max "$l")" "$(field webhooks "$l")" \
      "$(field p50 "$l")" "$(field p99 "$l")" "$(field max "$l")" "$(field bad_webhooks "$l")" \
      "$(field non2xx "$l")" "$(field errors "$l")" "$(field lag_max "$l")"
  done
  stop "$itsmd_pid"
}

# --- the run ---------------------------------------------------------------------------------

expected_keys=0
cut_off=0
if has wrk || has open || has mixed; then
  start_itsmd "$work/data" --maildir "$work/Maildir"; main_pid=$itsmd_pid
  start_am
  wait_ready "$itsmd_url/readyz" "$main_pid"; wait_ready "$am_url/-/ready" "$am_pid"
  # The fixed-rate parts first, on a near-empty store: wrk's storm (c) leaves as many
  # tickets as the machine managed to open, which would make later latencies depend on it.
  if has open; then part_open; fi
  if has mixed; then part_mixed; fi
  if has wrk; then part_wrk; fi
  out '== itsmd after the parts above (one daemon) =='
  made=$(tickets)
  verdict=MISMATCH
  [ "$made" -ge "$expected_keys" ] && [ "$made" -le $((expected_keys + cut_off)) ] && verdict=consistent
  out 'peak RSS (VmHWM) %s MiB; data dir %s MiB; tickets created %s: %s with %s distinct keys and mails acknowledged plus up to %s storm requests wrk cut off at its stop' \
    "$(proc_mib "$main_pid" VmHWM)" "$(dir_mib "$work/data")" "$made" "$verdict" "$expected_keys" "$cut_off"
  stop "$main_pid"; stop "$am_pid"
fi
if has e2e; then part_e2e; fi
if has big; then part_big; fi

echo
printf '%s\n' "${summary[@]}"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); load average before the run: $load_before"
