#!/usr/bin/env bash
# Runs the end-to-end load comparison of docs/BENCHMARKS.md: each server in
# turn on loopback, started here and killed by its pid, at 10/2 and 50/4
# subscribers/publishers. Everything is bounded: each load run stops by
# itself after DURATION + at most 10 s of drain.
#
#   benches/load/run.sh            # from the workspace root
#   DURATION=5 benches/load/run.sh
#   SERVERS="lockstep-sqlite-full lockstep-postgres" benches/load/run.sh
#   SHAPES="10x2 50x4 200x8" benches/load/run.sh   # subscribers x publishers
#
# `ws-ceiling` is the physical ceiling (`lockstep-ceiling`: raw WebSocket
# frames, no Socket.IO framing, no store), loaded with `--protocol raw`.
#
# `lockstep-postgres` uses POSTGRES_URL when set, else a throwaway
# PostgreSQL started here (scripts/postgres, fsync on: a commit waits for
# the disk, as SQLite `full` does) and stopped at the end; each run gets a
# fresh schema.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION="${DURATION:-10}"
PORT="${PORT:-3150}"
LOAD=target/release/lockstep-load
SERVER=target/release/lockstep-server
WORK="$(mktemp -d)"
SERVER_PID=""
PG_DIR=""
RUN=0
SERVERS="${SERVERS:-lockstep-sqlite-full lockstep-sqlite-normal lockstep-postgres lockstep-memory node-socketio socketioxide-plain ws-ceiling}"
SHAPES="${SHAPES:-10x2 50x4}"

cargo build --release -p lockstep-server -p lockstep-load -p lockstep-plain-socketioxide -p lockstep-ceiling
(cd benches/node && npm ci --no-audit --no-fund --silent)

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap 'stop_server; [ -z "$PG_DIR" ] || scripts/postgres stop "$PG_DIR"; rm -rf "$WORK"' EXIT

if [[ " $SERVERS " == *" lockstep-postgres "* ]] && [ -z "${POSTGRES_URL:-}" ]; then
  PG_DIR="$(mktemp -d)"
  eval "$(PG_FSYNC=on scripts/postgres start "$PG_DIR")"
  POSTGRES_URL="$LOCKSTEP_TEST_POSTGRES_URL"
fi

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server did not listen on $PORT" >&2
  return 1
}

# The rate limit is lifted: the load is the point. Per-connection buffers
# are as deep as the baselines' (Node's are unbounded, the socketioxide
# baseline's 1 M packets): with the defaults (1,024) a subscriber that falls
# that far behind a burst is cut off by design (it would re-join from its
# position; the generator does not) and the run would measure that policy.
LOCKSTEP_FLAGS=(--dev --addr "127.0.0.1:$PORT" --transports websocket
  --messages-per-sec 1000000 --messages-burst 1000000
  --conn-queue 1048576 --socket-buffer 1048576
  --conn-queue-bytes 4294967296 --user-queue-bytes 4294967296 --total-queue-bytes 17179869184)

start() {
  local name="$1"
  rm -f "$WORK"/db*
  case "$name" in
    lockstep-sqlite-full) "$SERVER" "${LOCKSTEP_FLAGS[@]}" --db "$WORK/db" --sqlite-sync full >"$WORK/log" 2>&1 & ;;
    lockstep-sqlite-normal) "$SERVER" "${LOCKSTEP_FLAGS[@]}" --db "$WORK/db" --sqlite-sync normal >"$WORK/log" 2>&1 & ;;
    lockstep-memory) "$SERVER" "${LOCKSTEP_FLAGS[@]}" --memory >"$WORK/log" 2>&1 & ;;
    lockstep-postgres)
      RUN=$((RUN + 1))
      "$SERVER" "${LOCKSTEP_FLAGS[@]}" --postgres "$POSTGRES_URL" \
        --postgres-schema "load_$$_$RUN" >"$WORK/log" 2>&1 & ;;
    node-socketio) PORT="$PORT" node benches/node/server.mjs >"$WORK/log" 2>&1 & ;;
    socketioxide-plain) PORT="$PORT" target/release/lockstep-plain-socketioxide >"$WORK/log" 2>&1 & ;;
    ws-ceiling) PORT="$PORT" target/release/lockstep-ceiling >"$WORK/log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  wait_port
}

for shape in $SHAPES; do
  subs="${shape%x*}"
  pubs="${shape#*x}"
  for name in $SERVERS; do
    start "$name"
    protocol=socketio
    [ "$name" != ws-ceiling ] || protocol=raw
    "$LOAD" --url "http://127.0.0.1:$PORT" --subscribers "$subs" --publishers "$pubs" \
      --window 32 --body-bytes 200 --duration "$DURATION" --drain 10 --protocol "$protocol" \
      --server-pid "$SERVER_PID" --label "$name" || true
    stop_server
  done
done
