#!/usr/bin/env bash
# make loadtest: Locust, headless, bounded in users and time.
#
# Without LOADTEST_HOST: builds and starts the fake Azure OpenAI and the test
# host (tests/host) on free loopback ports, with fresh state in a temp dir, a
# random admin password and JWT secret, and rate limits off (so the numbers
# measure the app, not its limiter); both are stopped on exit.
# With LOADTEST_HOST=https://...: runs the same mix against that deployment
# (LOADTEST_PASSWORD = its bootstrap admin's password).
#
# Output: target/loadtest/{summary.md,summary.json,run_*.csv,locust.log}, and
# the local run's host.log and fake-azure.log.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${LOADTEST_USERS:-10}
SPAWN_RATE=${LOADTEST_SPAWN_RATE:-5}
RUN_TIME=${LOADTEST_TIME:-30s}
OUT=target/loadtest
VENV=target/loadtest-venv
CARGO=${CARGO:-cargo}
mkdir -p "$OUT"
rm -f "$OUT"/run_*.csv "$OUT"/summary.*

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r loadtest/requirements.txt

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # url seconds
  for _ in $(seq 1 "$(($2 * 10))"); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "loadtest: $1 did not answer within $2 s" >&2
  return 1
}

pids=()
state=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$state" ]; then
    cp "$state"/*.log "$OUT/" 2>/dev/null || true
    rm -rf "$state"
  fi
}
trap cleanup EXIT INT TERM

if [ -z "${LOADTEST_HOST:-}" ]; then
  "$CARGO" build -q -p ragspin-host -p ragspin-fake-azure -p ragspin-access --bins
  state=$(mktemp -d "${TMPDIR:-/tmp}/ragspin-loadtest.XXXXXX")
  azure_port=$(free_port)
  api_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  target/debug/fake-azure --listen "127.0.0.1:$azure_port" --api-key "$api_key" >"$state/fake-azure.log" 2>&1 &
  pids+=($!)

  export LOADTEST_USERNAME=admin
  LOADTEST_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  export LOADTEST_PASSWORD
  admin_hash=$(RAGSPIN_PASSWORD="$LOADTEST_PASSWORD" target/debug/ragspin-hash-password)
  jwt_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
  host_port=$(free_port)
  target/debug/ragspin-host --manifest spin.toml --listen "127.0.0.1:$host_port" --state-dir "$state/spin" \
    --variable "azure_openai_endpoint=http://127.0.0.1:$azure_port" \
    --variable "azure_openai_api_key=$api_key" \
    --variable "azure_openai_embedding_deployment=text-embedding-3-small" \
    --variable "azure_openai_chat_deployment=gpt-4o-mini" \
    --variable "jwt_secret=$jwt_secret" \
    --variable "admin_password_hash=$admin_hash" \
    --variable "rate_limit_per_minute=0" \
    --variable "login_rate_limit_per_minute=0" \
    >"$state/host.log" 2>&1 &
  pids+=($!)
  HOST="http://127.0.0.1:$host_port"
  TARGET="test host + fake Azure OpenAI on loopback ($(nproc) cores)"
  wait_http "$HOST/healthz" 300 || { tail -20 "$state/host.log" >&2; exit 1; }
else
  HOST=$LOADTEST_HOST
  TARGET=$HOST
  : "${LOADTEST_PASSWORD:?set LOADTEST_PASSWORD to the admin password of the deployment}"
fi

echo "loadtest: $USERS users, $RUN_TIME, against $HOST" >&2
"$VENV/bin/locust" -f loadtest/locustfile.py --headless \
  --users "$USERS" --spawn-rate "$SPAWN_RATE" --run-time "$RUN_TIME" --stop-timeout 10 \
  --host "$HOST" --csv "$OUT/run" --only-summary --exit-code-on-error 0 \
  --logfile "$OUT/locust.log" --loglevel WARNING
"$VENV/bin/python" loadtest/summarize.py "$OUT" --users "$USERS" --duration "$RUN_TIME" --host "$HOST" --target "$TARGET" \
  --max-error-rate "${LOADTEST_MAX_ERROR_RATE:-0.01}"
