#!/usr/bin/env bash
# `kanaria serve` against real Git repositories on this machine: polling over file://, a monorepo
# of two apps, path-scoped triggers, newest wins, an invalid app, a force-push, an unreachable
# remote that recovers, restart without loss or duplicates, SIGHUP with a bad config, and the
# dataDir lock. The apps are the test HTTP server behind a managed HAProxy; their pipeline starts
# with WAIT_APPROVAL, so a pipeline deployment stays RUNNING and the commits after it queue up.
# The store is read with Python's sqlite3.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

stop() {
    kill -TERM "$pid"
    wait "$pid"
    local rc=$?
    pid=
    return $rc
}

declare -A bind
bind[web]=$(free_port)
bind[api]=$(free_port)
metrics=$(free_port)
listen=$(free_port) # the same in every config: a reload cannot move the API
ports=$((30000 + RANDOM % 20000))

app() { # dir name
    mkdir -p "$tmp/upstream/$1"
    cat >"$tmp/upstream/$1/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $2}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: WAIT_APPROVAL
      with: {timeout: 30m}
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
  command: [$server, --port, "{{port}}"]
  env: {VERSION: "$3"}
  frontend: {bind: "127.0.0.1:${bind[$2]}"}
YAML
}
config() { # extra repository lines
    cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$listen
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
$1
YAML
}

mkdir -p "$tmp/upstream"
git init -q -b main
app apps/web web && service apps/web web 1.0
app apps/api api && service apps/api api 1.0
git add -A && git commit -qm "first"
config ""

# 1. the first poll plans both apps, quick sync (first deployment), and deploys them
start
wait_for "both apps deployed" \
    "select app, strategy, status from deployments order by app" \
    "api|QUICK_SYNC|SUCCESS
web|QUICK_SYNC|SUCCESS"
check "first commit plans both apps and deploys them" $?
grep -q "repo=deploy app=web commit=.* deployment=.*planned QUICK_SYNC: quick sync: first deployment" "$tmp/log"
check "the log names repo, app, commit and deployment" $?
[ "$(curl -s "http://127.0.0.1:${bind[web]}/")" = "1.0" ]
check "web answers through HAProxy" $?

# 2. a second instance on the same dataDir is refused
"$bin" serve -c "$tmp/kanaria.yaml" >"$tmp/second.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "another kanaria serve is running on $tmp/data (pid $pid)" "$tmp/second.log"
check "a second instance is refused" $?

# 3. SIGTERM: exit 0; the apps keep serving; a restart plans nothing twice
stop
check "SIGTERM exits 0" $?
[ "$(curl -s "http://127.0.0.1:${bind[web]}/")" = "1.0" ]
check "the app keeps serving while kanaria is stopped" $?
start
sleep 2.5
wait_for "no duplicate after a restart" "select count(*) from deployments" "2"
check "restart: nothing lost, nothing duplicated" $?

# 4. a commit touching only web: exactly one deployment, a pipeline with its summary
service apps/web web 1.1
git commit -qam "web 1.1"
wait_for "web planned" \
    "select app, strategy, summary, status from deployments where id > 2" \
    "web|PIPELINE|pipeline: env VERSION changed 1.0 → 1.1|RUNNING"
check "a change to web plans web only, as a pipeline" $?
wait_for "three deployments in all" "select count(*) from deployments" "3"
check "api was not planned again" $?

# 5. newest wins: commits behind a running deployment wait; only the newest is kept
service apps/web web 1.2
git commit -qam "web 1.2"
wait_for "1.2 waits" "select status from deployments where summary like '%1.2'" "PLANNED"
check "a newer commit waits behind the running deployment" $?

# 6. an invalid app at a commit: reported, not deployed; the other app still is
sed -i 's/canary: 10/canary: 150/' "$tmp/upstream/apps/api/app.kanaria.yaml"
service apps/web web 1.3
git commit -qam "break api, web 1.3"
wait_for "invalid api recorded" "select count(*) from events where type='INVALID_APP' and app='api'" "1"
check "the invalid app is an event" $?
sql "select error from apps where name='api'" | grep -qF "apps/api/app.kanaria.yaml:11:22: stage 'TRAFFIC_ROUTING': 'canary' must be between 0 and 100, got 150"
check "its located errors are in its status" $?
wait_for "web 1.3 planned" "select status from deployments where summary like '%1.3'" "PLANNED"
check "the valid app is still planned" $?
wait_for "1.2 superseded" "select status from deployments where summary like '%1.2'" "SUPERSEDED"
check "only the newest waiting commit is kept" $?
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
wait_for "1.4 planned" "select status from deployments where summary like '%1.4'" "PLANNED"
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
wait_for "deploy still served" "select count(*) from deployments where summary like '%1.5'" "1"
check "the other repository keeps working" $?
mkdir -p "$tmp/later" && command git -C "$tmp/later" init -q -b main &&
    command git -C "$tmp/later" -c user.name=d -c user.email=d@e commit -q --allow-empty -m x
wait_for "later recovered" "select error, failing_since from repositories where name='later'" "|0"
check "the remote recovers after backoff" $?

stop
check "SIGTERM exits 0 at the end" $?
! grep -qi "password\|secret" "$tmp/log"
check "no credentials in the log" $?

summary
