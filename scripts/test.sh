#!/usr/bin/env bash
# Switchboard's one test command:
#
#     bash scripts/test.sh [extra `cargo test` arguments...]
#
# Runs every test of the workspace with nothing skipped. It prepares `.venv` at the
# repository root (SecantusDB, a MongoDB-wire server the MongoDB store is tested
# against, and grpcio-tools for the Python client check), starts SecantusDB in memory
# on a free loopback port, and runs `cargo test --workspace --locked` with:
#
#   SWITCHBOARD_TEST_MONGODB_URI  mongodb://127.0.0.1:<port>
#   SWITCHBOARD_TEST_PYTHON       <repo>/.venv/bin/python
#
# The server's log goes to target/secantus.log; the server stops when the script exits.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
venv="$root/.venv"
python="$venv/bin/python"
secantus_version="0.7.0b3"
startup_timeout_s=30

say() { printf 'test.sh: %s\n' "$*"; }

# --- Python tools ---------------------------------------------------------------------
if [[ ! -x "$python" ]]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
if ! "$python" - "$secantus_version" 2>/dev/null <<'PY'
import importlib.metadata, sys
assert importlib.metadata.version("SecantusDB") == sys.argv[1]
import grpc_tools.protoc  # noqa: F401
PY
then
  say "installing SecantusDB $secantus_version and grpcio-tools into .venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$python" -m pip install --quiet --pre \
    "SecantusDB==$secantus_version" grpcio-tools
fi

# --- MongoDB-wire test server ---------------------------------------------------------
port="$("$python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"
mkdir -p target
log="$root/target/secantus.log"
"$python" -m secantus --host 127.0.0.1 --port "$port" --storage-path :memory: >"$log" 2>&1 &
secantus_pid=$!

stop_secantus() {
  kill "$secantus_pid" 2>/dev/null || return 0
  # Bounded wait for it to exit, then force it.
  for _ in $(seq 1 50); do
    kill -0 "$secantus_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$secantus_pid" 2>/dev/null || true
  wait "$secantus_pid" 2>/dev/null || true
}
trap stop_secantus EXIT

deadline=$((SECONDS + startup_timeout_s))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  if ! kill -0 "$secantus_pid" 2>/dev/null; then
    say "SecantusDB exited before accepting connections; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    say "SecantusDB did not accept connections on 127.0.0.1:$port within ${startup_timeout_s} s; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  sleep 0.2
done
say "SecantusDB listening on 127.0.0.1:$port (log: target/secantus.log)"

# --- Tests ----------------------------------------------------------------------------
export SWITCHBOARD_TEST_MONGODB_URI="mongodb://127.0.0.1:$port"
export SWITCHBOARD_TEST_PYTHON="$python"
say "cargo test --workspace --locked $*"
cargo test --workspace --locked "$@"
