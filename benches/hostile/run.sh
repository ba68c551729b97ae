#!/usr/bin/env bash
# One hostile user against the release lockstep-server with its default
# limits (docs/BENCHMARKS.md, "Hostile users"): the numbers behind the
# promise that one valid user cannot raise the server's memory by more than
# a bounded budget nor slow another user's sends by more than 2x.
#
#   benches/hostile/run.sh                 # from the workspace root
#   BODIES=1000 FLOOD_SECONDS=20 benches/hostile/run.sh
#
# 1. mallory stores BODIES bodies of about 62 KB built to be dear as parsed
#    trees ([0,0,0,...]); then, on 4 connections at once, 20 joins and 20
#    history reads from seq 0 each. Reported: resident memory before and at
#    its peak (VmHWM), and the replies (all answered, each cut to 1 MiB).
# 2. bob sends one message at a time in another channel (20 ms apart):
#    ack latency idle, then while mallory keeps 64 history reads in flight.
set -euo pipefail
cd "$(dirname "$0")/../.."

BODIES="${BODIES:-1000}"
SENDS="${SENDS:-300}"
FLOOD_SECONDS="${FLOOD_SECONDS:-60}"
SERVER=target/release/lockstep-server
WORK="$(mktemp -d)"
SERVER_PID=""
FLOOD_PID=""

cargo build --release -p lockstep-server
(cd tests/js && npm ci --no-audit --no-fund --silent)

cleanup() {
  [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

rss() { awk -v f="$2:" '$1 == f { print int($2 / 1024) }' "/proc/$1/status"; }

# Defaults everywhere, but for storing the bodies quickly: the point is
# what the stored bodies can make the server do afterwards.
"$SERVER" --dev --addr 127.0.0.1:0 --db "$WORK/db" \
  --messages-per-sec 10000 --messages-burst 10000 >"$WORK/out" 2>"$WORK/log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$WORK/out" 2>/dev/null && break
  sleep 0.1
done
URL="http://$(sed -n 's/^listening on //p' "$WORK/out")"
echo "server $URL (pid $SERVER_PID), $(nproc) cpus: $(lscpu | sed -n 's/^Model name: *//p')"

before=$(rss "$SERVER_PID" VmRSS)
node tests/js/hostile.mjs store "$URL" "$BODIES"
node tests/js/hostile.mjs replies "$URL" 4
echo "memory: ${before} MiB before, $(rss "$SERVER_PID" VmHWM) MiB at peak"

node tests/js/hostile.mjs bystander "$URL" "$SENDS" | sed 's/^result/idle   /'
node tests/js/hostile.mjs flood "$URL" "$FLOOD_SECONDS" >"$WORK/flood" &
FLOOD_PID=$!
sleep 2
node tests/js/hostile.mjs bystander "$URL" "$SENDS" | sed 's/^result/flooded/'
kill "$FLOOD_PID" 2>/dev/null || true
wait "$FLOOD_PID" 2>/dev/null || true
FLOOD_PID=""
echo "memory at the end: $(rss "$SERVER_PID" VmRSS) MiB (peak $(rss "$SERVER_PID" VmHWM) MiB)"
