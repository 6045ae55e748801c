#!/usr/bin/env bash
# Peak memory of the release binary under each attack of issue #21, one fresh daemon per
# attack: the peak resident set (VmHWM in /proc/PID/status) once the attack is over.
#
#   bash bench/hostile.sh            # builds the release binary, runs every attack
#   ATTACKS="labels lists" bash bench/hostile.sh
#
# Attacks: labels (900 alerts, each with 8 labels at limits.label_bytes), lists (300 tickets
# with descriptions at limits.description_bytes, then 8 concurrent GET /api/v1/tickets?limit=300
# ten times over), trickle (1,100 connections trickling bodies to /v2/enqueue and a vendor
# callback for 15 s), mails (20 mails of 20 MiB into the Maildir). Needs python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ATTACKS=${ATTACKS:-"idle labels lists trickle mails"}
# ITSMD_BIN: another build (e.g. to try the script on a debug one; figures need release).
if [ -z "${ITSMD_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${ITSMD_BIN:-$PWD/target/release/itsmd}
ulimit -n 8192 2>/dev/null || true

run_attack() {
    local name=$1 dir port pid
    dir=$(mktemp -d)
    mkdir -p "$dir/Maildir"
    cat > "$dir/itsmd.toml" <<TOML
[server]
ingest_rate_per_sec = 0
[groups.triage]
[groups.operations]
[groups.dba]
[vendors.acme]
url = "http://127.0.0.1:9/"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
[egress]
allow = ["127.0.0.0/8"]
[mail]
settle = "0s"
TOML
    "$BIN" --log-format json serve --listen 127.0.0.1:0 --data-dir "$dir/data" \
        --rules-dir rules --config "$dir/itsmd.toml" --maildir "$dir/Maildir" \
        2> "$dir/log" &
    pid=$!
    for _ in $(seq 100); do
        port=$(grep -o '"addr":"127.0.0.1:[0-9]*"' "$dir/log" | grep -o '[0-9]*"$' | tr -d '"' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    python3 - "$name" "$port" "$dir/Maildir" <<'PY'
import json, socket, sys, threading, time, urllib.request, os
name, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base = f"http://127.0.0.1:{port}"
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
if name == "labels":
    big = "v" * ((16 << 10) - 64)
    for i in range(900):
        labels = {"alertname": "Big", "i": str(i)}
        labels.update({f"l{k}": big for k in range(8)})
        post("/api/v1/events", {"source": "bench", "status": "firing", "severity": "critical",
                                "summary": f"big {i}", "labels": labels})
elif name == "lists":
    desc = "d" * (64 << 10)
    for i in range(300):
        post("/api/v1/tickets", {"kind": "incident", "title": f"t{i}", "description": desc})
    def lister():
        for _ in range(10):
            with urllib.request.urlopen(base + "/api/v1/tickets?limit=300", timeout=120) as r:
                r.read()
    ts = [threading.Thread(target=lister) for _ in range(8)]
    [t.start() for t in ts]; [t.join() for t in ts]
elif name == "trickle":
    socks = []
    for i in range(1100):
        path = "/v2/enqueue" if i % 2 else "/api/v1/vendors/acme/callback"
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{".encode())
            socks.append(s)
        except OSError:
            pass
    end = time.time() + 15
    while time.time() < end:
        for s in socks:
            try: s.sendall(b" ")
            except OSError: pass
        time.sleep(0.5)
    status = post("/api/v1/events", {"source": "bench", "status": "firing", "severity": "critical", "summary": "x",
                                     "labels": {"alertname": "After"}})
    print(f"  authenticated intake during the trickle: {status}", file=sys.stderr)
elif name == "mails":
    body = ("A" * 76 + "\r\n") * ((20 << 20) // 78)
    for i in range(20):
        msg = (f"From: m{i}@example.org\r\nTo: desk@example.com\r\nSubject: huge {i}\r\n"
               f"Message-ID: <huge{i}@example.org>\r\n\r\n{body}")
        tmp = os.path.join(maildir, "tmp", f"{i}.eml")
        with open(tmp, "w") as f: f.write(msg)
        os.rename(tmp, os.path.join(maildir, "new", f"{i}.eml"))
    deadline = time.time() + 120
    while time.time() < deadline and os.listdir(os.path.join(maildir, "new")):
        time.sleep(0.5)
PY
    sleep 1
    local hwm rss
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    printf '%-8s peak %6d MiB   after %6d MiB\n' "$name" $((hwm / 1024)) $((rss / 1024))
    kill -TERM $pid; wait $pid || true
    rm -rf "$dir"
}

for a in $ATTACKS; do run_attack "$a"; done
