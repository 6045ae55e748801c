#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on a free loopback port for the tests and prints the
# line that points them at it:  eval "$(bash .ci/postgres.sh)"
# The cluster lives in a temporary folder and trusts local connections; stop it (and remove
# it) with:  bash .ci/postgres.sh stop "$ITSMD_TEST_PG_DIR"
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is missing: apt-get install postgresql" >&2; exit 1; }
as_owner=()
# initdb refuses to run as root: the cluster belongs to the postgres user.
[ "$(id -u)" -eq 0 ] && as_owner=(runuser -u postgres --)
if [ "${1:-}" = stop ]; then
  dir=${2:?usage: postgres.sh stop DIR}
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi
dir=$(mktemp -d /tmp/itsmd-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "export ITSMD_TEST_PG_URL='host=127.0.0.1 port=$port user=postgres'"
echo "export ITSMD_TEST_PG_DIR='$dir'"
