#!/usr/bin/env bash
# What the web UI reads of the API, against a real `kanaria serve` (local platform, real HAProxy):
# GET /api/v1/session (user, role, the newest event id; anonymous on a loopback API without
# users), each app's platform and status word, the live traffic split of one app; a deployment's
# pipeline as it runs it (recorded at its start, every stage listed ahead of time); the times of
# an analysis check's samples and its threshold.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
prom=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
# a Prometheus that scrapes nothing: the check's query is a constant
printf 'global: {scrape_interval: 1s, evaluation_interval: 1s}\n' >"$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address="127.0.0.1:$prom" >>"$tmp/prom.log" 2>&1 &
prom_pid=$!
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
metricsProviders:
  - {name: prom, type: prometheus, address: "http://127.0.0.1:$prom", timeout: 2s}
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
    - name: ANALYSIS
      with:
        duration: 4s
        metrics:
          - {name: level, provider: prom, query: "vector(0.01)", interval: 2s, expected: {max: 0.05}}
    - name: WAIT
      id: settle
      with: {duration: 1s}
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
assert a["broken"]["platform"] == "", a["broken"]'
rc=$?
check "the list gives each app its platform and status ($(cat "$tmp/body"))" $rc
ok=1
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$prom/-/ready" >/dev/null && { ok=0; break; }
    sleep 0.2
done
check "Prometheus is ready" $ok
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

# 3. the deployment's pipeline, and every stage of it ahead of time
[ "$(code GET /api/v1/deployments/2 tok-vic)" = 200 ] && json "$tmp/body" '
p = b["pipeline"]
assert [s["kind"] for s in p] == ["CANARY_ROLLOUT", "TRAFFIC_ROUTING", "ANALYSIS", "WAIT",
    "WAIT_APPROVAL", "PRIMARY_ROLLOUT", "TRAFFIC_ROUTING", "CANARY_CLEAN"], p
assert [s["index"] for s in p] == list(range(8))
assert p[1]["weights"] == {"primary": 70, "canary": 30, "baseline": 0}, p[1]
assert p[6]["weights"] == {"primary": 100, "canary": 0, "baseline": 0}, p[6]
assert p[2]["duration_ms"] == 4000 and p[2]["timeout_ms"] == 4000 + 300000, p[2]
assert p[2]["checks"] == [{"name": "level", "strategy": "threshold", "max": 0.05, "min": None,
    "interval_ms": 2000}], p[2]
assert p[3]["id"] == "settle" and p[3]["duration_ms"] == 1000 and p[3]["timeout_ms"] == 61000
assert p[4]["approvers"] == ["alice"] and p[4]["min_approvals"] == 1, p[4]
assert p[4]["timeout_ms"] == 6 * 3600 * 1000 and p[4]["duration_ms"] == 0 and p[4]["id"] == ""
assert p[0]["approvers"] == [] and p[0]["min_approvals"] == 0 and p[0]["timeout_ms"] == 600000
assert "weights" not in p[0] and "checks" not in p[0] and "checks" not in p[1]
s = b["stages"]
assert [x["index"] for x in s] == list(range(8)), s
assert [x["status"] for x in s] == ["SUCCESS"] * 4 + ["RUNNING"] + ["NOT_STARTED"] * 3, s
assert [x["name"] for x in s[5:]] == ["PRIMARY_ROLLOUT", "TRAFFIC_ROUTING", "CANARY_CLEAN"]
assert all(x["approvals"] == [] and x["started_at"] == 0 and x["finished_at"] == 0
    and x["analysis"] == [] for x in s[5:]), s[5:]
assert len(s[2]["analysis"]) >= 1 and s[2]["analysis"][0]["verdict"] == "PASS", s[2]'
rc=$?
check "GET /api/v1/deployments/2 has its pipeline and lists every stage ($(cat "$tmp/body"))" $rc
json "$tmp/body" '
for r in [r for s in b["stages"] for r in s["analysis"]]:
    assert r["check"] == "level" and r["threshold"] == {"max": 0.05, "min": None}, r
    assert list(r["values"]) == ["canary"] and list(r["times"]) == ["canary"], r
    v, t = r["values"]["canary"], r["times"]["canary"]
    assert len(v) >= 1 and len(t) == len(v) and v[0] == 0.01, r
    assert all(isinstance(x, int) and r["at"] - 60000 < x <= r["at"] + 1000 for x in t), r'
rc=$?
check "each analysis record has the times of its samples and the threshold ($(cat "$tmp/body"))" $rc
[ "$(code GET /api/v1/deployments/1 tok-vic)" = 200 ] && json "$tmp/body" '
assert [(s["index"], s["kind"]) for s in b["pipeline"]] == [(0, "SYNC")], b["pipeline"]
assert [(s["index"], s["name"], s["status"]) for s in b["stages"]] == [(0, "SYNC", "SUCCESS")]'
rc=$?
check "a quick sync's pipeline is its SYNC stage ($(cat "$tmp/body"))" $rc
sql "delete from stage_meta where deployment = 1 and idx = -1 and key = 'pipeline'"
[ "$(code GET /api/v1/deployments/1 tok-vic)" = 200 ] &&
    json "$tmp/body" 'assert b["pipeline"] is None and len(b["stages"]) == 1, b'
check "a deployment recorded without its pipeline has pipeline null and its recorded stages" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" approve hello)
check "alice approves ($out)" $?
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 60
check "v2 is promoted" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" status)
[ $? -eq 0 ] && grep -q "^hello .*SUCCESS" <<<"$out"
check "kanaria status still reads the apps ($out)" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" wait hello --deployment 2 --timeout 10s)
[ $? -eq 0 ] && [ "$(grep -c "^stage " <<<"$out")" = 8 ] && ! grep -q NOT_STARTED <<<"$out"
check "kanaria wait prints each stage once, none NOT_STARTED ($out)" $?

# 4. without users, on loopback: the session is anonymous, a viewer's
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
