#!/usr/bin/env bash
# The state store and restarts with `kanaria serve`: an empty or incomplete kanaria.db is refused
# at start, unchanged; a restart right after `kill -9` starts even while the lock file or the
# store is still held for a moment; a SIGHUP that changes a key read only at start is refused
# and kanaria keeps deploying on the running config; a full disk under dataDir shows in the API,
# `kanaria status` and /metrics, and clears by itself when there is space again (root only: the
# dataDir is a small tmpfs). The store is read with Python's sqlite3.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
full=0 # 1: dataDir is a small tmpfs of this test
finish() {
    [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null
    stop_local_platform "$tmp/data"
    [ "$full" = 1 ] && { sleep 0.5; umount "$tmp/data" || umount -l "$tmp/data"; }
    cleanup
}
trap finish EXIT

web=$(free_port)
metrics=$(free_port)
ports=$((30000 + RANDOM % 20000))
api=$(free_port)
export KANARIA_ADDR=http://127.0.0.1:$api
config() { # DATA_DIR
    cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $1
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - name: deploy
    url: file://$tmp/upstream
    branch: main
    pollInterval: 1s
YAML
}
# run_refused WHAT MESSAGE: kanaria serve exits 1 at once and logs MESSAGE
run_refused() {
    timeout 30 "$bin" serve -c "$tmp/kanaria.yaml" >"$tmp/refused.log" 2>&1
    local rc=$?
    [ $rc -eq 1 ] && grep -qF "$2" "$tmp/refused.log"
    check "$1" $?
    [ $rc -eq 1 ] || cat "$tmp/refused.log"
}

mkdir -p "$tmp/upstream/web"
git init -q -b main
cat >"$tmp/upstream/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  manifests: [service.yaml]
YAML
test_service "$tmp/upstream/web" web 1.0 "$web" 1
git add -A && git commit -qm "web 1.0"
config "$tmp/data"

mkdir -p "$tmp/data"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=16m tmpfs "$tmp/data" 2>/dev/null; then
    full=1
fi

# 1. an empty kanaria.db is not a new store: refused, left as it was
: >"$tmp/data/kanaria.db"
run_refused "an empty kanaria.db is refused at start" "is empty, not a kanaria database"
[ -f "$tmp/data/kanaria.db" ] && [ ! -s "$tmp/data/kanaria.db" ] && [ ! -e "$tmp/data/kanaria.db-wal" ]
check "the empty kanaria.db is left as it was" $?
rm -f "$tmp/data/kanaria.db"

# 2. the first start deploys; a store that then loses a table is refused, unchanged
start
wait_for "web deployed" "select status from deployments" "SUCCESS"
check "a new store is created and web deployed" $?
kill -TERM "$pid" && wait "$pid"
pid=
sql "drop table stage_meta"
sum=$(sha256sum "$tmp/data/kanaria.db")
run_refused "a store without a table of its schema is refused at start" \
    "has a table 'stage_meta' but the file has not"
[ "$(sha256sum "$tmp/data/kanaria.db")" = "$sum" ]
check "the incomplete store is left as it was" $?
sql "create table stage_meta (deployment INTEGER NOT NULL REFERENCES deployments (id)
    ON DELETE CASCADE, idx INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (deployment, idx, key))"

# 3. kill -9, and the lock file and the store still held for a moment by another process (the
# killed kanaria exiting, a reader checkpointing): the restart waits for them and starts
start
wait_for "running again" "select count(*) from deployments" "1"
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
python3 - "$tmp/data" <<'PY' &
import fcntl, sqlite3, sys, time
lock = open(sys.argv[1] + "/kanaria.lock", "a")
fcntl.flock(lock, fcntl.LOCK_EX)
db = sqlite3.connect(sys.argv[1] + "/kanaria.db", isolation_level=None)
db.execute("begin exclusive")
open(sys.argv[1] + "/held", "w").close()
time.sleep(1)
fcntl.flock(lock, fcntl.LOCK_UN)
time.sleep(1)
db.execute("rollback")
PY
hold=$!
for _ in $(seq 1 100); do [ -e "$tmp/data/held" ] && break; sleep 0.1; done
start
wait "$hold"
sleep 1
kill -0 "$pid" 2>/dev/null && grep -q "serving 1 repositories" "$tmp/log"
check "a restart while the lock and the store are still held for a moment starts" $?
kill -0 "$pid" 2>/dev/null || { pid=; summary; exit 1; }

# 4. SIGHUP changing dataDir: refused with the key named, the running config kept
config "$tmp/elsewhere"
kill -HUP "$pid"
for _ in $(seq 1 50); do grep -q "SIGHUP" "$tmp/log" && break; sleep 0.1; done
grep "SIGHUP" "$tmp/log" | grep -q "level=error.*'dataDir' changed, which takes a restart of kanaria; keeping the running config"
check "a SIGHUP that changes dataDir is refused, naming the key" $?
test_service "$tmp/upstream/web" web 1.1 "$web" 1
git commit -qam "web 1.1"
wait_for "web 1.1 deployed after the refused reload" \
    "select count(*) from deployments where status = 'SUCCESS'" "2"
check "deployments go on with the running config" $?
[ "$(curl -s "http://127.0.0.1:$web/")" = "1.1" ]
check "web 1.1 answers" $?
[ ! -e "$tmp/elsewhere" ]
check "nothing was made in the new dataDir" $?

# 5. a full disk under dataDir: shown in the API, `kanaria status` and /metrics; cleared by
# itself once there is space again
if [ "$full" = 1 ]; then
    dd if=/dev/zero of="$tmp/data/filler" bs=64k 2>/dev/null
    ok=1
    for _ in $(seq 1 150); do
        curl -s -o "$tmp/metrics" "$KANARIA_ADDR/metrics"
        grep -q '^kanaria_storage_error 1$' "$tmp/metrics" && { ok=0; break; }
        sleep 0.2
    done
    check "a full disk shows in /metrics" $ok
    curl -s "$KANARIA_ADDR/api/v1/apps" | python3 -c 'import json,sys
j = json.load(sys.stdin)
sys.exit(0 if "database or disk is full" in j["storage_error"]
         and "database or disk is full" in j["apps"][0]["storage_error"] else 1)'
    check "a full disk shows in the API, for the apps too" $?
    "$bin" status | grep -q "^storage error: cannot write '$tmp/data/kanaria.db': database or disk is full"
    check "a full disk shows in kanaria status" $?
    # to a file first: grep -q leaves at its match, and curl, still writing, would fail the
    # pipeline (pipefail) with the longer /metrics of kanaria's own series
    curl -s -o "$tmp/metrics" "$KANARIA_ADDR/metrics"
    grep -Eq '^kanaria_store_write_errors_total [1-9]' "$tmp/metrics"
    st=$?; check "the failed writes are counted ($(grep '^kanaria_store_write' "$tmp/metrics"))" "$st"
    rm -f "$tmp/data/filler"
    ok=1
    for _ in $(seq 1 150); do
        curl -s -o "$tmp/metrics" "$KANARIA_ADDR/metrics"
        grep -q '^kanaria_storage_error 0$' "$tmp/metrics" && { ok=0; break; }
        sleep 0.2
    done
    check "the storage error clears once there is space" $ok
    [ "$(curl -s "$KANARIA_ADDR/api/v1/apps" | python3 -c 'import json,sys; print(json.load(sys.stdin)["storage_error"])')" = "" ]
    check "the API shows no storage error any more" $?
    test_service "$tmp/upstream/web" web 1.2 "$web" 1
    git commit -qam "web 1.2"
    wait_for "web 1.2 deployed after the disk was full" \
        "select count(*) from deployments where status = 'SUCCESS'" "3"
    check "deployments go on after the disk was full" $?
elif [ "${CI:-}" = true ]; then
    check "CI can mount a small tmpfs for the full disk checks (it runs as root)" 1
else
    echo "SKIPPED: the full disk checks need root to mount a small tmpfs"
fi

stop_kanaria
