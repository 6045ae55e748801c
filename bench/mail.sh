#!/usr/bin/env bash
# Outbound mail throughput: mails/s through the durable outbox to a loopback SMTP server
# (aiosmtpd, tests/it/smtp_sink.py). The release daemon is started on a temp data dir with
# [smtp] pointing at the sink and one group of PEOPLE members with addresses; TICKETS
# tickets are opened for the group in a burst (each owes every member one mail), and the
# time from the first request to the last mail in the sink's Maildir is measured. RUNS runs;
# prints each run's rate and the median and spread.
#
#   bash bench/mail.sh                      # 200 tickets × 5 people = 1000 mails, 3 runs
#   TICKETS=100 PEOPLE=2 RUNS=5 bash bench/mail.sh
#
# Needs python3 with aiosmtpd (pip install aiosmtpd) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
TICKETS=${TICKETS:-200}
PEOPLE=${PEOPLE:-5}
RUNS=${RUNS:-3}
IN_FLIGHT=${IN_FLIGHT:-4}
[ "${BUILD:-1}" = 1 ] && cargo build --release --quiet  # BUILD=0: the binary as built
bin=target/release/itsmd
token=bench-admin-token-for-mail
rates=()
for run in $(seq "$RUNS"); do
  dir=$(mktemp -d)
  smtp_port=$((20000 + RANDOM % 20000))
  http_port=$((20000 + RANDOM % 20000))
  members=$(for i in $(seq "$PEOPLE"); do printf '"p%d",' "$i"; done)
  {
    printf '[auth]\ntokens = [{ name = "root", role = "admin", token = "%s" }]\n' "$token"
    printf '[groups.triage]\n[groups.bench]\nmembers = [%s]\n' "${members%,}"
    printf '[smtp]\nhost = "127.0.0.1"\nport = %d\ntls = "none"\nfrom = "desk@example.com"\nmax_in_flight = %d\n' "$smtp_port" "$IN_FLIGHT"
    printf '[smtp.notify]\nassigned = ["group"]\np1_opened = []\n[smtp.people]\n'
    for i in $(seq "$PEOPLE"); do printf 'p%d = "p%d@example.com"\n' "$i" "$i"; done
  } > "$dir/itsmd.toml"
  python3 tests/it/smtp_sink.py "$smtp_port" "$dir/sent" > "$dir/sink.out" &
  sink=$!
  "$bin" serve --config "$dir/itsmd.toml" --data-dir "$dir/data" --listen "127.0.0.1:$http_port" \
    --rules-dir "$dir/no-rules" 2> "$dir/itsmd.log" &
  daemon=$!
  until curl -sf "http://127.0.0.1:$http_port/readyz" > /dev/null; do sleep 0.1; done
  until grep -q ready "$dir/sink.out"; do sleep 0.1; done
  want=$((TICKETS * PEOPLE))
  start=$(date +%s.%N)
  curls=()
  for i in $(seq "$TICKETS"); do
    curl -sf -o /dev/null -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"kind\":\"incident\",\"title\":\"Bench $i\",\"group\":\"bench\"}" \
      "http://127.0.0.1:$http_port/api/v1/tickets" &
    curls+=($!)
    if (( ${#curls[@]} == 16 )); then wait "${curls[@]}"; curls=(); fi
  done
  (( ${#curls[@]} )) && wait "${curls[@]}"
  while [ "$(ls "$dir/sent/new" 2>/dev/null | wc -l)" -lt "$want" ]; do sleep 0.05; done
  end=$(date +%s.%N)
  rate=$(echo "$want / ($end - $start)" | bc -l)
  printf 'run %d: %d mails in %.2f s = %.0f mails/s\n' "$run" "$want" "$(echo "$end - $start" | bc -l)" "$rate"
  rates+=("$rate")
  kill "$daemon" "$sink"; wait "$daemon" "$sink" 2>/dev/null || true
  rm -rf "$dir"
done
sorted=$(printf '%s\n' "${rates[@]}" | sort -g)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
min=$(echo "$sorted" | head -1); max=$(echo "$sorted" | tail -1)
printf 'mails/s: median %.0f, min %.0f, max %.0f (%d runs of %d tickets × %d people, max_in_flight %d)\n' \
  "$median" "$min" "$max" "$RUNS" "$TICKETS" "$PEOPLE" "$IN_FLIGHT"
