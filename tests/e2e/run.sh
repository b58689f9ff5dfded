#!/usr/bin/env bash
# End-to-end test of the web page in a real browser (`make e2e`).
#
# Installs what it needs when missing (Debian `chromium` with apt-get, the
# pinned `playwright-core` with `npm ci`), builds the test host, the fake
# Azure OpenAI server and the password hasher, starts both servers on free
# loopback ports (port 0, the bound address read from their logs) with a
# fresh state directory, runs the SSE parser's unit tests and the browser
# script (web.e2e.mjs), and stops everything it started on exit. Every wait
# is bounded. Needs the release components (`make wasm`).
# Screenshots: target/e2e/*.png; server logs: target/e2e/*.log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT="$ROOT/target/e2e"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CARGO=${CARGO:-cargo}
mkdir -p "$OUT"
rm -f "$OUT"/*.png

log() { printf 'e2e: %s\n' "$*" >&2; }

if [ ! -x "$CHROMIUM" ]; then
  log "installing Debian chromium"
  timeout 1200 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >"$OUT/apt.log" 2>&1 ||
    { tail -20 "$OUT/apt.log" >&2; log "could not install chromium"; exit 1; }
fi
log "$("$CHROMIUM" --version 2>/dev/null | tail -1)"

(cd tests/e2e && timeout 600 npm ci --no-audit --no-fund --loglevel=error)

for c in health auth ingest query web; do
  [ -f "target/wasm32-wasip2/release/$c.wasm" ] ||
    { log "target/wasm32-wasip2/release/$c.wasm is missing: run 'make wasm' first"; exit 1; }
done

timeout 1800 "$CARGO" build -q -p ragspin-host --bin ragspin-host \
  -p ragspin-fake-azure --bin fake-azure -p ragspin-access --bin ragspin-hash-password
TARGET_DIR=$("$CARGO" metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
BIN="$TARGET_DIR/debug"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ragspin-e2e.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait (at most $4 seconds) for "$3 http://127.0.0.1:PORT" in log $1 of process $2.
address_in() {
  local file=$1 pid=$2 words=$3 deadline=$((SECONDS + $4)) url
  while [ "$SECONDS" -lt "$deadline" ]; do
    url=$(grep -o "$words http://127\.0\.0\.1:[0-9]\+" "$file" 2>/dev/null | head -1 | grep -o 'http://.*' || true)
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  log "no address in $file:"; cat "$file" >&2
  return 1
}

secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
PASSWORD="e2e-$(secret)"
API_KEY="fake-$(secret)"
JWT_SECRET="$(secret)$(secret)"
HASH=$(RAGSPIN_PASSWORD="$PASSWORD" timeout 60 "$BIN/ragspin-hash-password")

# The servers stop by themselves after 15 minutes if this script is killed.
# (Logs are emptied here, not by the background redirections, which may
# run after address_in first reads them.)
: >"$OUT/fake-azure.log"
: >"$OUT/host.log"
timeout 900 "$BIN/fake-azure" --listen 127.0.0.1:0 --api-key "$API_KEY" >>"$OUT/fake-azure.log" 2>&1 &
PIDS+=($!)
FAKE_URL=$(address_in "$OUT/fake-azure.log" "${PIDS[-1]}" "listening on" 30)
log "fake Azure OpenAI at $FAKE_URL"

timeout 900 "$BIN/ragspin-host" --manifest spin.toml --listen 127.0.0.1:0 --state-dir "$WORK/state" \
  --variable "jwt_secret=$JWT_SECRET" \
  --variable "admin_username=admin" \
  --variable "admin_password_hash=$HASH" \
  --variable "azure_openai_endpoint=$FAKE_URL" \
  --variable "azure_openai_api_key=$API_KEY" \
  --variable "azure_openai_chat_deployment=gpt-4o-mini" \
  --variable "azure_openai_embedding_deployment=text-embedding-3-small" \
  >>"$OUT/host.log" 2>&1 &
PIDS+=($!)
APP_URL=$(address_in "$OUT/host.log" "${PIDS[-1]}" "serving" 60)
log "app at $APP_URL"

cd tests/e2e
timeout 120 node --test sse.test.mjs >"$OUT/sse-test.log" 2>&1 ||
  { cat "$OUT/sse-test.log" >&2; log "the SSE parser's unit tests failed"; echo "e2e: 0 passed, 1 failed"; exit 1; }
SSE_PASSED=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$OUT/sse-test.log")
log "SSE parser unit tests: ${SSE_PASSED:-0} passed"

UNIT_PASSED="${SSE_PASSED:-0}" APP_URL="$APP_URL" FAKE_URL="$FAKE_URL" RAGSPIN_USER=admin RAGSPIN_PASSWORD="$PASSWORD" \
  CHROMIUM="$CHROMIUM" USER_DATA_DIR="$WORK/chromium" OUT="$OUT" FIXTURES="$ROOT/tests/fixtures/docs" \
  timeout 420 node web.e2e.mjs &
# In the background so that a signal to this script ends it at once.
PIDS+=($!)
wait "${PIDS[-1]}"
