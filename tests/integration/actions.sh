#!/usr/bin/env bash
# The operator actions against a real `kanaria serve` (local platform, real HAProxy): cancel of
# a canary waiting at WAIT_APPROVAL (traffic back on the primary), sync of the head that was
# rolled back, a manual rollback to an older good commit, WAIT_APPROVAL skipped only by an
# admin's break-glass, and the refusals (a viewer, an operator skipping an approval, an unknown
# app, a deployment in progress, a commit never deployed); a probe of the canary alone
# ({{variant_url}}), retry of a rolled-back revision and promote --full (refused while an
# approval waits).
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
mkdir -p "$tmp/upstream/hello"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - name: deploy
    url: "file://$tmp/upstream"
    branch: main
    pollInterval: 1s
users:
  - {name: vic, role: viewer, tokenSha256: $(hash tok-vic)}
  - {name: olga, role: operator, tokenSha256: $(hash tok-olga)}
  - {name: ada, role: admin, tokenSha256: $(hash tok-ada)}
YAML
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: TRAFFIC_ROUTING
      with: {canary: 50}
    - name: WAIT_APPROVAL
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 1; } # version
op() { KANARIA_TOKEN=tok-olga "$bin" "$@"; }
admin() { KANARIA_TOKEN=tok-ada "$bin" "$@"; }

git init -q -b main
service v1
git add -A && git commit -qm "hello v1"
v1=$(git rev-parse HEAD)
start
wait_for "v1 deployed" "select status from deployments" "SUCCESS" 60
check "the first commit deploys v1" $?

# 1. v2 waits at WAIT_APPROVAL; refusals; a cancel rolls it back
service v2
git commit -qam "hello v2"
v2=$(git rev-parse HEAD)
waiting_stage 2
check "v2 waits for approval" $?
out=$(op wait hello --timeout 2s 2>"$tmp/wait.err")
rc=$?
[ $rc -eq 3 ] && grep -q "stage 2 WAIT_APPROVAL: RUNNING" <<<"$out" &&
    grep -q "deployment 2 has not ended after 2 s" "$tmp/wait.err"
check "kanaria wait on a waiting approval ends at its timeout with exit 3 (rc $rc: $out)" $?
op wait nope >/dev/null 2>"$tmp/wait.err"
[ $? -eq 1 ] && grep -q "HTTP 404" "$tmp/wait.err"
check "kanaria wait on an unknown app exits 1 with the API's 404" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" cancel hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 403" <<<"$out" && grep -q "operator" <<<"$out"
check "a viewer cannot cancel: 403 ($out)" $?
[ "$(code POST /api/v1/apps/hello/sync tok-vic)" = 403 ] &&
    [ "$(code POST /api/v1/apps/hello/rollback tok-vic)" = 403 ] &&
    [ "$(code POST /api/v1/apps/hello/skip tok-vic -d '{"stage": 2}')" = 403 ]
check "a viewer cannot sync, roll back or skip: 403" $?
out=$(op cancel nope 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 404" <<<"$out"
check "cancelling an unknown app is 404 ($out)" $?
[ "$(code POST /api/v1/apps/nope/rollback tok-olga)" = 404 ] &&
    [ "$(code POST /api/v1/apps/nope/sync tok-olga)" = 404 ] &&
    [ "$(code POST /api/v1/apps/nope/skip tok-olga -d '{"stage": 1}')" = 404 ]
check "rollback, sync and skip of an unknown app are 404" $?
out=$(op rollback hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out" && grep -q "deployment 2 of 'hello'" <<<"$out"
check "a rollback while v2 runs is 409 naming it ($out)" $?
out=$(op sync hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out"
check "a sync while v2 runs is 409 ($out)" $?
out=$(op skip hello --stage 0 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out" && grep -q "has finished" <<<"$out"
check "skipping a finished stage is 409 ($out)" $?
[ "$(code POST /api/v1/apps/hello/cancel tok-olga -d '{"rollback": "yes"}')" = 400 ]
check "a 'rollback' that is not a boolean is 400" $?
out=$(op cancel hello)
check "olga cancels v2 (exit 0: $out)" $?
wait_for "v2 cancelled" "select status from deployments where id = 2" "CANCELLED" 60
check "the cancel ends v2 CANCELLED" $?
reason=$(sql "select reason from deployments where id = 2")
[ "$reason" = "cancelled by olga" ]
check "the reason names the operator ($reason)" $?
out=$(op wait hello --deployment 2 2>"$tmp/wait.err")
rc=$?
[ $rc -eq 1 ] && grep -q "CANCELLED" <<<"$out" &&
    grep -q "deployment 2 CANCELLED: cancelled by olga" "$tmp/wait.err"
check "kanaria wait on the cancelled v2 exits 1 with its reason (rc $rc)" $?
out=$(count 40)
[ "$out" = "v1 40" ]
check "traffic is back on the primary, v1 ($out)" $?
[ "$(sql "select actor from events where type = 'CANCEL_REQUESTED'")" = olga ] &&
    sql "select message from events where type = 'CANCEL_REQUESTED'" | grep -q "from 127.0.0.1:"
check "the cancel is in the audit log with its user and address" $?
sleep 2
[ "$(sql "select count(*) from deployments")" = 2 ]
check "the cancelled head is not deployed again by the next poll" $?

# 2. sync deploys the head that was rolled back
out=$(op sync hello)
check "olga syncs (exit 0: $out)" $?
wait_for "v2 synced" "select status, strategy, [trigger], commit_id from deployments where id = 3" \
    "SUCCESS|QUICK_SYNC|sync by olga|$v2" 60
check "the sync deploys the head v2 as a quick sync" $?
out=$(count 20)
[ "$out" = "v2 20" ]
check "v2 serves after the sync ($out)" $?

# 3. a manual rollback to v1 (a prefix of its commit)
out=$(op rollback hello --to 0000000 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 400" <<<"$out" && grep -q "never deployed successfully" <<<"$out"
check "a rollback to a commit never deployed is 400 ($out)" $?
out=$(op rollback hello --to "${v1:0:7}")
check "olga rolls back to ${v1:0:7} (exit 0: $out)" $?
wait_for "rolled back to v1" "select status, [trigger], commit_id from deployments where id = 4" \
    "SUCCESS|rollback by olga|$v1" 60
check "the rollback deploys v1 again" $?
out=$(count 20)
[ "$out" = "v1 20" ]
check "v1 serves after the rollback ($out)" $?
[ "$(sql "select last_good from apps where name = 'hello'")" = "$v1" ]
check "v1 is the last good commit again" $?

# 4. v3's WAIT_APPROVAL: an operator's skip is refused; an admin's break-glass lets it out
service v3
git commit -qam "hello v3"
waiting_stage 5
check "v3 waits for approval" $?
out=$(op skip hello --stage 2 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 403" <<<"$out" && grep -q "passes only with its approvals" <<<"$out" &&
    grep -q "breakGlass" <<<"$out"
check "an operator's skip of WAIT_APPROVAL is 403, saying why ($out)" $?
[ "$(sql "select status from stages where deployment = 5 and idx = 2")" = RUNNING ]
check "the refused skip leaves the stage waiting" $?
out=$(op skip hello --stage 2 --break-glass --reason "hotfix" 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 403" <<<"$out" && grep -q "admin role" <<<"$out"
check "an operator cannot break glass: 403 ($out)" $?
out=$(admin skip hello --stage 2 --break-glass 2>&1)
[ $? -eq 2 ] && grep -q "needs --reason" <<<"$out"
check "--break-glass without --reason is a usage error ($out)" $?
[ "$(code POST /api/v1/apps/hello/skip tok-ada -d '{"stage": 2, "breakGlass": true}')" = 400 ] &&
    grep -q "reason" "$tmp/body"
check "a break-glass without a reason is 400" $?
[ "$(code POST /api/v1/apps/hello/skip tok-ada -d '{"stage": 2}')" = 403 ]
check "an admin's skip without break-glass is 403 too" $?
out=$(op promote hello --full 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out" &&
    grep -q "stage 2 WAIT_APPROVAL of deployment 5 lacks its approvals" <<<"$out"
check "promote --full while the approval waits is 409, saying why ($out)" $?
out=$(op promote hello 2>&1)
[ $? -eq 2 ] && grep -q "needs --full" <<<"$out"
check "promote without --full is a usage error ($out)" $?
[ "$(code POST /api/v1/deployments/5/promote tok-vic -d '{"full": true}')" = 403 ] &&
    [ "$(code POST /api/v1/deployments/5/promote tok-olga -d '{}')" = 400 ] &&
    grep -q "'full' must be true" "$tmp/body"
check "a viewer cannot promote (403); a promotion without full is 400" $?
[ "$(sql "select status from stages where deployment = 5 and idx = 2")" = RUNNING ]
check "the refused promotions leave the approval waiting" $?
out=$(admin skip hello --stage 2 --break-glass --reason "incident 42: fix must ship")
[ $? -eq 0 ] && grep -q "skipped stage 2 WAIT_APPROVAL" <<<"$out" && grep -q "(break-glass)" <<<"$out"
check "ada breaks glass on WAIT_APPROVAL ($out)" $?
out=$(op wait hello --timeout 60s 2>&1)
rc=$?
[ $rc -eq 0 ] && grep -q "deployment 5 of hello (.*): SUCCESS" <<<"$out"
check "kanaria wait follows v3 to its end and exits 0 (rc $rc: $out)" $?
wait_for "v3 promoted" "select status from deployments where id = 5" "SUCCESS" 60
check "the pipeline goes on to the end" $?
[ "$(sql "select status from stages where deployment = 5 and idx = 2")" = SKIPPED ]
check "the stage is recorded SKIPPED" $?
[ "$(sql "select actor from events where type = 'BREAK_GLASS'")" = ada ] &&
    grep -q "break-glass skip stage 2 WAIT_APPROVAL of deployment 5, reason \"incident 42: fix must ship\" from 127.0.0.1:" \
        <<<"$(sql "select message from events where type = 'BREAK_GLASS'")"
check "the break-glass is in the audit log with its user, address and reason" $?
# (grep reads a variable: grep -q ending a pipeline early fails it under pipefail)
msgs=$(sql "select message from events where deployment = 5 and type = 'STAGE_FINISHED'")
grep -q "stage 2 WAIT_APPROVAL: SKIPPED (skipped by ada (break-glass): incident 42" <<<"$msgs"
check "the stage's event names the break-glass" $?
reason=$(sql "select reason from deployments where id = 5")
[ "$reason" = "stage 2 WAIT_APPROVAL skipped by ada (break-glass): incident 42: fix must ship" ]
check "the release's reason names the break-glass ($reason)" $?
curl -s -H "Authorization: Bearer tok-vic" "$KANARIA_ADDR/api/v1/deployments/5" |
    python3 -c 'import json, sys
s = [x for x in json.load(sys.stdin)["stages"] if x["index"] == 2][0]
sys.exit(s["reason"] != "skipped by ada (break-glass): incident 42: fix must ship")'
check "the deployment's stages show why stage 2 was skipped" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" status)
grep "^hello" <<<"$out" | grep -q "skipped by ada (break-glass)"
check "kanaria status shows the break-glass ($out)" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" history hello)
grep "^5 " <<<"$out" | grep -q "skipped by ada (break-glass)"
check "kanaria history shows the break-glass ($out)" $?
out=$(count 20)
[ "$out" = "v3 20" ]
check "v3 serves ($out)" $?
[ "$(sql "select count(*) from events where actor = 'olga' and type in ('CANCEL_REQUESTED',
    'SYNC_REQUESTED', 'ROLLBACK_REQUESTED')")" = 3 ] &&
    [ "$(sql "select count(*) from events where actor = 'olga' and type = 'API_REFUSED'")" = 2 ]
check "every action is in the audit log, and so are olga's refused skips" $?

# 5. v5 probes its canary alone ({{variant_url}}: the canary gets no traffic, the frontend
#    answers v3); the first try fails at a closed gate and rolls back; retry runs the revision
#    through the pipeline again; promote --full takes it from the hour's WAIT to the promotion
gate=$(free_port)
mkdir -p "$tmp/www" && echo open >"$tmp/www/gate"
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: ANALYSIS
      with:
        duration: 3s
        http:
          - {name: canary-version, variant: canary, url: "{{variant_url}}/", bodyRegex: "^v5",
             interval: 1s, timeout: 1s}
          - {name: gate, url: "http://127.0.0.1:$gate/gate", interval: 1s, timeout: 1s,
             inconclusiveLimit: 0}
    - name: WAIT
      with: {duration: 1h}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
service v5
git commit -qam "hello v5, probed alone"
v5=$(git rev-parse HEAD)
wait_for "v5 rolled back" "select status from deployments where id = 6" "FAILURE" 60
check "v5 fails at the closed gate and rolls back" $?
out=$(op promote hello --full 2>&1)
[ $? -eq 1 ] && grep -q "no deployment of 'hello' is in progress" <<<"$out"
check "promote --full with nothing in progress fails ($out)" $?
python3 -m http.server "$gate" --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 &
ext_pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$gate/gate" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$gate/gate" >/dev/null
check "the gate opens" $?
out=$(op retry hello)
[ $? -eq 0 ] && grep -q "retrying hello at ${v5:0:7}: deployment #7 as olga" <<<"$out"
check "olga retries v5 ($out)" $?
[ "$(sql "select [trigger], strategy, commit_id from deployments where id = 7")" = \
    "retry by olga|PIPELINE|$v5" ]
check "the retry is recorded with its trigger, through the pipeline" $?
out=$(op retry hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out"
check "a retry while the retry runs is 409 ($out)" $?
wait_for "the retry at WAIT" "select name from stages where deployment = 7 and
    status = 'RUNNING'" "WAIT" 60
check "the retried v5 passes its analysis and waits" $?
probes=$(sql "select verdict || ' ' || query from analysis_records where deployment = 7 and
    check_name = 'canary-version'")
! grep -qv "^PASS GET http://127.0.0.1:[0-9]*/$" <<<"$probes" && grep -q PASS <<<"$probes" &&
    ! grep -q ":$bind/" <<<"$probes"
check "the canary probe reached v5's instance, not the frontend ($probes)" $?
out=$(count 20)
[ "$out" = "v3 20" ]
check "meanwhile the frontend serves v3 ($out)" $?
out=$(op promote hello --full)
[ $? -eq 0 ] && grep -q "promoting deployment #7 of hello in full as olga" <<<"$out"
check "olga promotes the healthy canary in full ($out)" $?
wait_for "v5 promoted" "select status from deployments where id = 7" "SUCCESS" 60
check "the promotion skips the hour's WAIT and ends SUCCESS" $?
[ "$(sql "select status from stages where deployment = 7 order by idx")" = \
    "$(printf 'SUCCESS\nSUCCESS\nSKIPPED\nSUCCESS\nSUCCESS\nSUCCESS')" ]
check "WAIT is recorded SKIPPED, the rest ran" $?
msgs=$(sql "select message from events where deployment = 7 and type = 'STAGE_FINISHED'")
grep -q "stage 2 WAIT: SKIPPED (promoted by olga (full))" <<<"$msgs"
check "the skipped stage's event says who promoted" $?
[ "$(sql "select actor from events where type = 'PROMOTE_REQUESTED'")" = olga ] &&
    [ "$(sql "select actor from events where type = 'RETRY_REQUESTED'")" = olga ]
check "retry and promote are in the audit log" $?
out=$(count 20)
[ "$out" = "v5 20" ]
check "v5 serves ($out)" $?
out=$(op retry hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out" && grep -q "is SUCCESS" <<<"$out"
check "nothing to retry after a success: 409 ($out)" $?

stop_kanaria
