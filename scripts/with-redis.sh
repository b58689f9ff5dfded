#!/usr/bin/env bash
# Runs a command with a throw-away Redis on 127.0.0.1 (a free port, data in a
# temp dir, no persistence files), exported as RAGSPIN_REDIS_URL; Redis is
# stopped and its folder removed on exit, whatever happens.
#   scripts/with-redis.sh cargo test -p ragspin-host --test redis
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
  echo "with-redis: installing Debian's redis-server" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  # Debian's postinst tries to start the service; a policy-rc.d or missing
  # systemd just skips that. Only the binary is used here.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ragspin-redis.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
  --save '' --appendonly no --daemonize no --protected-mode yes \
  --logfile "$dir/redis.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 50); do
  if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "with-redis: redis-server exited:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
  fi
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$port" ping | grep -q PONG
echo "with-redis: redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port (pid $pid)" >&2

export RAGSPIN_REDIS_URL="redis://127.0.0.1:$port"
export RAGSPIN_REQUIRE_REDIS=1
"$@"
