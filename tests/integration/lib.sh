# Shared by the integration tests: checks, free ports, and stopping what kanaria left running.

failures=0
passed=0

# check DESCRIPTION STATUS: STATUS must be the exit status of the test, taken right after it
# (`cmd; rc=$?` then `check "... $(detail)" $rc`: a $(...) in DESCRIPTION resets $?). Anything
# but one number there is a broken check, and it fails.
check() {
    if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
        echo "FAIL: $1 (broken check: the status must be one number, got [${*:2}])"
        failures=$((failures + 1))
    elif [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: $1"
        failures=$((failures + 1))
    fi
}

# start_prometheus JOB TARGET [METRICS_PATH]: a real Prometheus on 127.0.0.1:$prom (data in
# $tmp), scraping 127.0.0.1:TARGET every second as job JOB; its pid in prom_pid (cleanup stops it)
start_prometheus() {
    cat >"$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: $1
    metrics_path: ${3:-/metrics}
    static_configs: [{targets: ["127.0.0.1:$2"]}]
YAML
    prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
        --web.listen-address="127.0.0.1:$prom" >>"$tmp/prom.log" 2>&1 &
    prom_pid=$!
}

# A TCP port on 127.0.0.1 that nothing listens on now.
# A free loopback port, never one this test was handed before: the kernel may give a port it
# just freed to the next bind, and two of a test's listeners must not be told the same port.
# Handed-out ports are kept in $tmp (every test makes one first), else in a file of this shell.
free_port() {
    local f="${tmp:-${TMPDIR:-/tmp}}/.kanaria-free-ports.$$" p n
    for n in 1 2 3 4 5 6 7 8 9 10; do
        p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
        grep -qx "$p" "$f" 2>/dev/null || break
    done
    echo "$p" >>"$f"
    echo "$p"
}

# Stop the HAProxy and the app instances a kanaria with this dataDir started: they run in
# their own sessions, on purpose, so they outlive kanaria; a test must not leave them behind.
stop_local_platform() { # DATA_DIR
    local d=$1 f pid
    for f in $(find "$d/local" -name '*.json' ! -name apps.json 2>/dev/null); do
        pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid", ""))' "$f" 2>/dev/null)
        [ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for f in $(find "$d/local" -name haproxy.pid 2>/dev/null); do
        pid=$(head -n1 "$f")
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    return 0
}

# The end of every test that runs kanaria (trap cleanup EXIT): kanaria ($pid) killed, the
# background helpers a test keeps in load_pid, prom_pid, ext_pid, rpid or spid stopped, the
# local platform's HAProxy and instances stopped, kanaria's log kept in $TMPDIR when a check
# failed, and the test's folder removed.
cleanup() {
    local v
    [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null
    for v in load_pid prom_pid ext_pid rpid spid; do
        [ -n "${!v:-}" ] && kill "${!v}" 2>/dev/null
    done
    stop_local_platform "$tmp/data"
    [ "$failures" -eq 0 ] || cp "$tmp/log" "${TMPDIR:-/tmp}/kanaria-$(basename "$0" .sh)-failed.log" 2>/dev/null
    rm -rf "$tmp"
    return 0
}

# The helpers below work on the test's folder "$tmp": an upstream repository in
# "$tmp/upstream", a config in "$tmp/kanaria.yaml", kanaria's dataDir in "$tmp/data" and its log
# in "$tmp/log". `bin` is the kanaria binary; `pid` the running `kanaria serve`.

# Git in the upstream repository, committing as a developer would.
git() {
    command git -C "$tmp/upstream" -c user.name=dev -c user.email=dev@example.com \
        -c commit.gpgsign=false "$@"
}

# Run SQL on kanaria's state store (Python's sqlite3; rows as a|b|c lines).
sql() {
    python3 -c 'import sqlite3,sys
c = sqlite3.connect(sys.argv[1], timeout=5)
for row in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))
c.commit()' "$tmp/data/kanaria.db" "$1"
}

# wait_for DESCRIPTION SQL EXPECTED [SECONDS]: poll the store until the query gives EXPECTED.
wait_for() {
    local got
    for _ in $(seq 1 $((${4:-30} * 5))); do
        got=$(sql "$2" 2>/dev/null)
        [ "$got" = "$3" ] && return 0
        sleep 0.2
    done
    echo "  waited for $1: expected [$3], got [$got]"
    return 1
}

# summary: the counts, kanaria's log when a check failed, and the test's exit status.
summary() {
    echo "$(basename "$0" .sh): $passed passed, $failures failed"
    [ "$failures" -eq 0 ] || { echo "--- log"; grep -v "level=debug" "$tmp/log" | tail -120; }
    [ "$failures" -eq 0 ]
}

# stop_kanaria: SIGTERM to kanaria, which must exit 0; then summary.
stop_kanaria() {
    kill -TERM "$pid"
    wait "$pid"
    check "kanaria exits 0 on SIGTERM" $?
    pid=
    summary
}

start() {
    "$bin" serve -c "$tmp/kanaria.yaml" >>"$tmp/log" 2>&1 &
    pid=$!
}

# test_service DIR NAME VERSION BIND [REPLICAS] [EXTRA_ENV]: write DIR/service.yaml, a
# LocalService of the test HTTP server ($server) on 127.0.0.1:BIND. EXTRA_ENV is added to the
# env map as written, e.g. ', ERROR_RATE: "0.3"'.
test_service() {
    cat >"$1/service.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: LocalService
metadata: {name: $2}
spec:
  command: [$server, --port, "{{port}}"]
  env: {VERSION: "$3"${6:-}}
  replicas: ${5:-2}
  healthCheck: {path: /healthz, interval: 200ms, timeout: 200ms}
  frontend: {bind: "127.0.0.1:$4"}
YAML
}

# start_load URL FILE: steady requests (about 50 a second) in the background, one line per
# answer in FILE: its body, "error CODE" or "failed". Sets load_pid.
start_load() {
    python3 - "$1" "$2" <<'PY' &
import sys, time, urllib.request, urllib.error
url, out = sys.argv[1], sys.argv[2]
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read().decode().strip()
    except urllib.error.HTTPError as e:
        body = "error %d" % e.code
    except Exception:
        body = "failed"
    with open(out, "a") as f:
        f.write(body + "\n")
    time.sleep(0.02)
PY
    load_pid=$!
}

# The helpers below talk to a running kanaria: its API at $KANARIA_ADDR, HAProxy at $bind.

# hash TOKEN: the SHA-256 kanaria.yaml keeps of a token
hash() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

# count N: N requests through HAProxy, as "VERSION COUNT" lines
count() {
    python3 - "http://127.0.0.1:$bind/" "$1" <<'PY'
import collections, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
seen = collections.Counter()
for _ in range(n):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            seen[r.read().decode().strip()] += 1
    except Exception:
        seen["failed"] += 1
for k, v in sorted(seen.items()):
    print(k, v)
PY
}

# code METHOD PATH TOKEN [CURL ARGS...]: the HTTP status of one API call
code() {
    local m=$1 p=$2 t=$3
    shift 3
    curl -s -o "$tmp/body" -w '%{http_code}' -X "$m" ${t:+-H "Authorization: Bearer $t"} "$@" \
        "$KANARIA_ADDR$p"
}

waiting_stage() { # DEPLOYMENT
    wait_for "deployment $1 waiting" "select s.name from stages s where s.deployment = $1 and
        s.status = 'RUNNING'" "WAIT_APPROVAL" 60
}

# shares_sockets PID_A PID_B: whether the two processes hold one socket in common (an inherited
# descriptor), naming each; 1 when they share none
shares_sockets() {
    local s found=1
    for s in $(readlink /proc/$1/fd/* 2>/dev/null | grep '^socket:'); do
        readlink /proc/$2/fd/* 2>/dev/null | grep -qxF "$s" && { echo "  shares $s"; found=0; }
    done
    return $found
}
