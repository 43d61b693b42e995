#!/usr/bin/env bash
# `kanaria serve` against real Git repositories on this machine: polling over file://, a monorepo
# of two apps, path-scoped triggers, newest wins, an invalid app, a force-push, an unreachable
# remote that recovers, restart without loss or duplicates, SIGHUP with a bad config, and the
# dataDir lock. The store is read with Python's sqlite3.
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
passed=0
check() {
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
git() { command git -C "$tmp/upstream" -c user.name=dev -c user.email=dev@example.com \
    -c commit.gpgsign=false "$@"; }
sql() { python3 -c 'import sqlite3,sys
c = sqlite3.connect(sys.argv[1], timeout=5)
for row in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))' \
    "$tmp/data/kanaria.db" "$1"; }
# wait_for DESCRIPTION SQL EXPECTED: poll the store for up to 20 s
wait_for() {
    local got
    for _ in $(seq 1 100); do
        got=$(sql "$2" 2>/dev/null)
        [ "$got" = "$3" ] && return 0
        sleep 0.2
    done
    echo "  waited for $1: expected [$3], got [$got]"
    return 1
}
start() {
    "$bin" serve -c "$tmp/kanaria.yaml" >>"$tmp/log" 2>&1 &
    pid=$!
}
stop() {
    kill -TERM "$pid"
    wait "$pid"
    local rc=$?
    pid=
    return $rc
}

app() { # dir name
    mkdir -p "$tmp/upstream/$1"
    cat >"$tmp/upstream/$1/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $2}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {canary: 10}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
service() { # dir name version
    cat >"$tmp/upstream/$1/service.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: LocalService
metadata: {name: $2}
spec:
  command: [/opt/$2/$3/$2, --port, "{{port}}"]
  frontend: {bind: "127.0.0.1:9000"}
YAML
}
config() { # extra repository lines
    cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
repositories:
  - name: deploy
    url: file://$tmp/upstream
    branch: main
    pollInterval: 1s
$1
YAML
}

mkdir -p "$tmp/upstream"
git init -q -b main
app apps/web web && service apps/web web 1.0
app apps/api api && service apps/api api 1.0
git add -A && git commit -qm "first"
config ""

# 1. the first poll plans both apps, quick sync (first deployment)
start
wait_for "both apps planned" \
    "select app, strategy, status from deployments order by app" \
    "api|QUICK_SYNC|PLANNED
web|QUICK_SYNC|PLANNED"
check "first commit plans both apps" $?
grep -q "repo=deploy app=web commit=.* deployment=.*planned QUICK_SYNC: quick sync: first deployment" "$tmp/log"
check "the log names repo, app, commit and deployment" $?

# 2. a second instance on the same dataDir is refused
"$bin" serve -c "$tmp/kanaria.yaml" >"$tmp/second.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "another kanaria serve is running on $tmp/data (pid $pid)" "$tmp/second.log"
check "a second instance is refused" $?

# 3. SIGTERM: exit 0; restart plans nothing twice
stop
check "SIGTERM exits 0" $?
start
sleep 2.5
wait_for "no duplicate after a restart" "select count(*) from deployments" "2"
check "restart: nothing lost, nothing duplicated" $?
stop

# the pipeline engine would now deploy them; mark them done as it would
sql "select 1" >/dev/null
python3 - "$tmp/data/kanaria.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("update deployments set status='SUCCESS', finished_at=1")
c.execute("update apps set last_good=(select commit_id from deployments d where d.app=apps.name), current_deployment=0")
c.commit()
PY

# 4. a commit touching only web: exactly one deployment, a pipeline with its summary
start
service apps/web web 1.1
git commit -qam "web 1.1"
wait_for "web planned" \
    "select app, strategy, summary, status from deployments where status='PLANNED'" \
    "web|PIPELINE|pipeline: command changed /opt/web/1.0/web → /opt/web/1.1/web|PLANNED"
check "a change to web plans web only, as a pipeline" $?
wait_for "three deployments in all" "select count(*) from deployments" "3"
check "api was not planned again" $?

# 5. newest wins: a newer commit supersedes the one not yet started
v11=$(git rev-parse HEAD)
service apps/web web 1.2
git commit -qam "web 1.2"
wait_for "1.1 superseded" "select status from deployments where commit_id='$v11'" "SUPERSEDED"
check "the older waiting deployment is superseded" $?
wait_for "1.2 planned" "select count(*) from deployments where status='PLANNED' and app='web'" "1"
check "only the newest waits" $?

# 6. an invalid app at a commit: reported, not deployed; the other app still is
sed -i 's/canary: 10/canary: 150/' "$tmp/upstream/apps/api/app.kanaria.yaml"
service apps/web web 1.3
git commit -qam "break api, web 1.3"
wait_for "invalid api recorded" "select count(*) from events where type='INVALID_APP' and app='api'" "1"
check "the invalid app is an event" $?
sql "select error from apps where name='api'" | grep -qF "apps/api/app.kanaria.yaml:9:22: stage 'TRAFFIC_ROUTING': 'canary' must be between 0 and 100, got 150"
check "its located errors are in its status" $?
wait_for "web 1.3 planned" "select count(*) from deployments where summary like '%1.3/web' and status='PLANNED'" "1"
check "the valid app is still planned" $?
[ "$(sql "select count(*) from deployments where app='api'")" = 1 ]
check "the invalid app is not deployed" $?

# 7. force-push: the waiting deployment of a commit that left the branch is dropped
v13=$(git rev-parse HEAD)
git reset -q --hard HEAD~1
service apps/web web 1.4
git commit -qam "web 1.4 (rewritten history)"
wait_for "force-push seen" "select count(*) from events where type='FORCE_PUSHED'" "1"
check "a force-push is an event" $?
wait_for "1.3 dropped" "select status from deployments where commit_id='$v13'" "SUPERSEDED"
check "a commit no longer on the branch is never deployed" $?
wait_for "1.4 planned" "select count(*) from deployments where summary like '%1.4/web' and status='PLANNED'" "1"
check "planning goes on from the new head" $?

# 8. SIGHUP with a bad config keeps the running one
cp "$tmp/kanaria.yaml" "$tmp/good.yaml"
echo "bogus: [" >>"$tmp/kanaria.yaml"
kill -HUP "$pid"
sleep 1
kill -0 "$pid" 2>/dev/null && grep -q "is invalid, keeping the running config" "$tmp/log"
check "SIGHUP with a bad config keeps running" $?

# 9. an unreachable remote is retried while the rest keeps working, and recovers
config "  - name: later
    url: $tmp/later
    pollInterval: 1s"
kill -HUP "$pid"
wait_for "later failing" "select error != '' and failing_since > 0 from repositories where name='later'" "1"
check "an unreachable remote is recorded with the time it started failing" $?
service apps/web web 1.5
git commit -qam "web 1.5"
wait_for "deploy still served" "select count(*) from deployments where summary like '%1.5/web'" "1"
check "the other repository keeps working" $?
mkdir -p "$tmp/later" && command git -C "$tmp/later" init -q -b main &&
    command git -C "$tmp/later" -c user.name=d -c user.email=d@e commit -q --allow-empty -m x
wait_for "later recovered" "select error, failing_since from repositories where name='later'" "|0"
check "the remote recovers after backoff" $?

stop
check "SIGTERM exits 0 at the end" $?
! grep -qi "password\|secret" "$tmp/log"
check "no credentials in the log" $?

echo "serve: $passed passed, $failures failed"
[ $failures -eq 0 ] || { echo "--- log"; cat "$tmp/log"; }
[ $failures -eq 0 ]
