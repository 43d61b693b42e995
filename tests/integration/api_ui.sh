#!/usr/bin/env bash
# What the web UI reads of the API, against a real `kanaria serve` (local platform, real HAProxy):
# GET /api/v1/session (user, role, the newest event id; anonymous on a loopback API without
# users), each app's platform and status word, the live traffic split of one app.
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
mkdir -p "$tmp/upstream/hello" "$tmp/upstream/broken"
config() { # USERS (yes|no)
    cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
driftInterval: 1s
platforms:
  - name: edge
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
    [ "$1" = yes ] && cat >>"$tmp/kanaria.yaml" <<YAML
users:
  - {name: vic, role: viewer, tokenSha256: $(hash tok-vic)}
  - {name: alice, role: approver, tokenSha256: $(hash tok-alice)}
YAML
}
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  platform: edge
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: TRAFFIC_ROUTING
      with: {canary: 30}
    - name: WAIT_APPROVAL
      with: {approvers: [alice], minApprovers: 1}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
printf 'apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: broken}\nspec: {nope: 1}\n' \
    >"$tmp/upstream/broken/app.kanaria.yaml"
test_service "$tmp/upstream/hello" hello v1 "$bind" 1
# json FILE PYTHON: run PYTHON with the JSON body of FILE as `b` (an assert fails the check)
json() { python3 -c "import json, sys
b = json.load(open(sys.argv[1]))
$2" "$1"; }

git init -q -b main
git add -A && git commit -qm "hello v1"
config yes
start
wait_for "v1 deployed" "select status from deployments" "SUCCESS" 60
check "the first commit deploys v1" $?

# 1. the session: who calls, with which role, where the event stream starts
[ "$(code GET /api/v1/session tok-alice)" = 200 ] && json "$tmp/body" '
assert b["user"] == "alice" and b["role"] == "approver" and b["anonymous"] is False, b
assert isinstance(b["last_event_id"], int) and b["last_event_id"] >= 1, b
assert b["version"] != "", b'
rc=$?
check "GET /api/v1/session names alice, approver ($(cat "$tmp/body"))" $rc
last=$(sql "select max(id) from events")
json "$tmp/body" "assert b['last_event_id'] == $last, b"
check "its last_event_id is the newest event's ($last)" $?
[ "$(code GET /api/v1/session tok-vic)" = 200 ] &&
    json "$tmp/body" 'assert b["user"] == "vic" and b["role"] == "viewer", b'
check "a viewer reads its session" $?
[ "$(code GET /api/v1/session "")" = 401 ] && json "$tmp/body" 'assert b["error"] != ""'
check "no token is 401 with an error when users are declared" $?
[ "$(code GET /api/v1/session tok-nobody)" = 401 ]
check "an unknown token is 401" $?

# 2. apps: platform and status in the list and the app; the app's traffic now
[ "$(code GET /api/v1/apps tok-vic)" = 200 ] && json "$tmp/body" '
a = {x["name"]: x for x in b["apps"]}
assert a["hello"]["platform"] == "edge" and a["hello"]["status"] == "SYNCED", a["hello"]
assert a["broken"]["status"] == "INVALID" and a["broken"]["error"] != "", a["broken"]
assert a["broken"]["platform"] == "edge", a["broken"]'
rc=$?
check "the list gives each app its platform and status ($(cat "$tmp/body"))" $rc
test_service "$tmp/upstream/hello" hello v2 "$bind" 1
git commit -qam "hello v2"
waiting_stage 2
check "v2 waits for approval" $?
[ "$(code GET /api/v1/apps tok-vic)" = 200 ] &&
    json "$tmp/body" 'assert [x for x in b["apps"] if x["name"] == "hello"][0]["status"] == "DEPLOYING"'
check "an app with a deployment running is DEPLOYING" $?
ok=1
for _ in $(seq 1 50); do
    code GET /api/v1/apps/hello tok-vic >/dev/null
    json "$tmp/body" 'assert b["traffic"] == {"primary": 70, "canary": 30, "baseline": 0}' \
        2>/dev/null && { ok=0; break; }
    sleep 0.2
done
check "GET /api/v1/apps/hello shows the live split primary 70, canary 30 ($(cat "$tmp/body"))" $ok
json "$tmp/body" 'assert b["status"] == "DEPLOYING" and b["platform"] == "edge"
assert b["traffic_error"] == "" and len(b["deployments"]) == 2'
check "the app has its status, platform and deployments too" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" approve hello)
check "alice approves ($out)" $?
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 60
check "v2 is promoted" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" status)
[ $? -eq 0 ] && grep -q "^hello .*SUCCESS" <<<"$out"
check "kanaria status still reads the apps ($out)" $?

# 3. without users, on loopback: the session is anonymous, a viewer's
kill -TERM "$pid" && wait "$pid"
check "kanaria stops" $?
pid=
config no
start
ok=1
for _ in $(seq 1 50); do
    [ "$(code GET /api/v1/session "")" = 200 ] && { ok=0; break; }
    sleep 0.2
done
json "$tmp/body" 'assert b["user"] is None and b["role"] == "viewer" and b["anonymous"] is True, b'
rc=$?
check "without users the session is anonymous ($(cat "$tmp/body"))" $((ok | rc))
stop_kanaria
