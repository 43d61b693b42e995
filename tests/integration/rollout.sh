#!/usr/bin/env bash
# A real canary on the local platform: the test HTTP server behind a managed HAProxy, driven by
# `kanaria serve` from commits to a Git repository. Quick sync of v1; a commit to v2 runs
# CANARY_ROLLOUT → TRAFFIC_ROUTING 10% → WAIT_APPROVAL, and the responses through HAProxy split
# as the weights say; kill -9 of kanaria at that point loses no request and the restarted kanaria
# resumes; approval promotes v2. Then a canary that never gets healthy is rolled back with the
# traffic on the primary, and the reason is recorded.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT


bind=$(free_port)
metrics=$(free_port)
ports=$((30000 + RANDOM % 20000))
mkdir -p "$tmp/upstream/hello"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$(free_port)
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: SCRIPT_RUN
      with:
        run: test -f service.yaml && echo "\$KANARIA_COMMIT \$GREETING" >>$tmp/script.log
        env: {GREETING: hello}
        onRollback: echo "\$KANARIA_COMMIT" >>$tmp/rollback.log
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: TRAFFIC_ROUTING
      with: {canary: 10}
    - name: WAIT_APPROVAL
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 2 "${2:-}"; } # version [extra env]
git init -q -b main
service v1 ""
git add -A && git commit -qm "hello v1"

# 1. the first commit deploys v1 (quick sync)
start
wait_for "v1 deployed" "select strategy, status from deployments" "QUICK_SYNC|SUCCESS"
rc=$?
check "the first commit is a quick sync that succeeds $(sql "select reason from deployments")" $rc
out=$(count 20)
[ "$out" = "v1 20" ]
check "v1 serves every request through HAProxy ($out)" $?

# 2. v2: canary with 10% of the traffic, waiting for approval
service v2 ""
git commit -qam "hello v2"
wait_for "canary waiting" "select s.name from stages s join deployments d on d.id = s.deployment
    where d.id = 2 and s.status = 'RUNNING'" "WAIT_APPROVAL"
check "v2 runs the canary and waits for approval" $?
out=$(count 1000)
v2=$(awk '$1 == "v2" {print $2}' <<<"$out")
failed=$(awk '$1 == "failed" {print $2}' <<<"$out")
# 10% of 1000: sd = sqrt(1000 * 0.1 * 0.9) ≈ 9.5; allow five sd either way
[ -z "$failed" ] && [ "${v2:-0}" -ge 52 ] && [ "${v2:-0}" -le 148 ]
rc=$?
check "the canary takes about 10% of the traffic ($(tr '\n' ' ' <<<"$out"))" $rc

# 3. kill -9 of kanaria: the apps keep serving, the restart resumes the deployment
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
out=$(count 200)
! grep -q failed <<<"$out"
rc=$?
check "no request failed while kanaria was down ($(tr '\n' ' ' <<<"$out"))" $rc
start
sleep 2
wait_for "still waiting" "select status from deployments where id = 2" "RUNNING"
check "the restarted kanaria resumes the deployment" $?
grep -q "resuming stage 3 WAIT_APPROVAL" "$tmp/log"
check "it resumes the stage it was in" $?

# 4. approval promotes v2
sql "insert into approvals (deployment, stage, who, decision, at) values (2, 3, 'alice', 'APPROVE', 0)"
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS"
check "an approval promotes v2" $?
out=$(count 50)
[ "$out" = "v2 50" ]
check "v2 serves everything after the promotion ($out)" $?
[ "$(sql "select count(*) from stages where deployment = 2 and status = 'SUCCESS'")" = 7 ]
check "every stage of the pipeline succeeded once" $?
[ "$(cat "$tmp/script.log")" = "$(git rev-parse HEAD) hello" ]
check "SCRIPT_RUN ran in the app's folder with its env" $?

# 5. a canary that never gets healthy is rolled back; traffic stays on the primary
service v3 ', UNHEALTHY: "1"'
git commit -qam "hello v3 (broken)"
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 90
check "a canary that fails its health check is rolled back" $?
reason=$(sql "select reason from deployments where id = 3")
grep -q "stage CANARY_ROLLOUT failed: .*not healthy.*(rolled back)" <<<"$reason"
check "the reason is recorded ($reason)" $?
out=$(count 50)
[ "$out" = "v2 50" ]
check "traffic is all on the primary after the rollback ($out)" $?
[ "$(sql "select rolled_back_from != '' from apps where name = 'hello'")" = 1 ]
check "the app shows it was rolled back" $?
[ "$(cat "$tmp/rollback.log")" = "$(git rev-parse HEAD)" ]
check "the rollback ran the script's onRollback command" $?
sleep 3
[ "$(sql "select count(*) from deployments")" = 3 ]
check "the failed commit is not deployed again by the next poll" $?

stop_kanaria
