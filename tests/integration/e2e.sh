#!/usr/bin/env bash
# End to end, as a user runs it: a push deploys (polling); kill -9 of kanaria during the canary's
# analysis and during ROLLBACK — the restarted kanaria resumes the analysis, or completes the
# rollback, and no request through HAProxy failed while it was down; a commit with an invalid app
# config deploys nothing, its located errors show in `kanaria status`, and the live app is
# untouched.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
load_pid=
trap cleanup EXIT

bind=$(free_port)
api=$(free_port)
dead=$(free_port)
metrics=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"

cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
mkdir -p "$tmp/upstream/hello"
app() { # probe-url
    cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: SCRIPT_RUN
      with:
        run: "true"
        onRollback: sleep 4 && echo "\$KANARIA_COMMIT" >>$tmp/on-rollback.log
    - name: CANARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {canary: 30}
    - name: ANALYSIS
      with:
        duration: 8s
        http:
          - {name: probe, url: "$1", interval: 2s, timeout: 1s}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind"; } # version
# steady load through HAProxy, one line per answer
start_load "http://127.0.0.1:$bind/" "$tmp/load"

git init -q -b main
app "http://127.0.0.1:$bind/healthz"
service v1
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
check "a push deploys v1 (polling)" $?

# 1. kill -9 during the canary's analysis: the apps keep serving, the analysis resumes
service v2
git commit -qam "hello v2"
wait_for "v2 analysing" "select status from stages where deployment = 2 and idx = 3" "RUNNING" 60
check "v2 reaches the analysis" $?
sleep 3
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
: >"$tmp/load"
sleep 3
down=$(sort "$tmp/load" | uniq -c | tr '\n' ' ')
! grep -q failed "$tmp/load" && grep -q v2 "$tmp/load" && grep -q v1 "$tmp/load"
check "with kanaria down, v1 and the v2 canary serve and no request fails ($down)" $?
start
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 60
check "the restarted kanaria resumes the analysis and promotes v2" $?
grep -q "resuming stage 3 ANALYSIS" "$tmp/log"
check "it resumed the analysis it was in" $?
[ "$(sql "select count(*) from analysis_records where deployment = 2 and verdict = 'PASS'")" -ge 2 ]
check "the analysis kept its evaluations across the restart (before and after)" $?

# 2. kill -9 during ROLLBACK: the restart completes the rollback
app "http://127.0.0.1:$dead/healthz"
service v3
git commit -qam "hello v3, probing a dead endpoint"
wait_for "v3 rolling back" "select status from deployments where id = 3" "ROLLING_BACK" 60
check "v3 fails its analysis and rolls back" $?
for _ in $(seq 1 50); do
    grep -q "deployment=3 stage=ROLLBACK msg=\"onRollback commands\"" "$tmp/log" && break
    sleep 0.1
done
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
: >"$tmp/load"
sleep 2
! grep -q failed "$tmp/load"
rc=$?
check "with kanaria down mid-rollback no request fails ($(sort "$tmp/load" | uniq -c | tr '\n' ' '))" $rc
start
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 60
check "the restarted kanaria completes the rollback" $?
grep -q "(rolled back)" <<<"$(sql "select reason from deployments where id = 3")"
rc=$?
check "the reason says it was rolled back ($(sql "select reason from deployments where id = 3"))" $rc
: >"$tmp/load"
sleep 2
! grep -qv '^v2$' "$tmp/load"
rc=$?
check "traffic is all on v2 after the rollback ($(sort "$tmp/load" | uniq -c | tr '\n' ' '))" $rc
[ "$(cat "$tmp/on-rollback.log" 2>/dev/null | tail -1)" = "$(git rev-parse HEAD)" ]
check "the onRollback command ran to its end" $?

# 3. an invalid app config: nothing deployed, the errors in `kanaria status`, the app untouched
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: TRAFFIC_ROUTING
      with: {canary: 150}
YAML
service v4
git commit -qam "hello v4, broken config"
wait_for "invalid recorded" "select error != '' from apps where name = 'hello'" 1 30
check "the invalid config is recorded on the app" $?
out=$("$bin" status hello)
grep -q "invalid: *hello/app.kanaria.yaml:8:" <<<"$out"
rc=$?
check "kanaria status shows the located errors ($(grep invalid <<<"$out"))" $rc
sleep 2
[ "$(sql "select count(*) from deployments")" = 3 ]
check "no deployment for the invalid commit" $?
: >"$tmp/load"
sleep 1
! grep -qv '^v2$' "$tmp/load"
check "the live app is untouched" $?

stop_kanaria
