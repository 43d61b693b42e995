#!/usr/bin/env bash
# The client commands an operator reads a deployment with, against a real `kanaria serve` (local
# platform, real HAProxy, a Prometheus for the analysis): `kanaria events` (the audit log read a
# page at a time from GET /api/v1/audit, its filters, --follow on the event stream and across a
# restart of kanaria), the stream's
# `Last-Event-ID: 0` (from the start), `kanaria status` (the stage's id, time left, approvals,
# traffic), `status --watch --until-done`, `kanaria get deployment`, and the TLS error naming
# KANARIA_CACERT.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
rpid=
spid=
ext_pid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
prom=$(free_port)
tls=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
unset KANARIA_TOKEN KANARIA_CACERT
printf 'global: {scrape_interval: 1s, evaluation_interval: 1s}\n' >"$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address="127.0.0.1:$prom" >>"$tmp/prom.log" 2>&1 &
prom_pid=$!
mkdir -p "$tmp/upstream/hello"
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
users:
  - {name: alice, role: approver, tokenSha256: $(hash tok-alice)}
  - {name: bob, role: approver, tokenSha256: $(hash tok-bob)}
YAML
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
      id: errors
      with:
        duration: 3s
        metrics:
          - {name: level, provider: prom, query: "vector(0.01)", interval: 1s, expected: {max: 0.05}}
    - name: WAIT
      id: settle
      with: {duration: 1s}
    - name: WAIT_APPROVAL
      id: gate
      with: {approvers: [alice, bob], minApprovers: 2, timeout: 1h}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
test_service "$tmp/upstream/hello" hello v1 "$bind" 1
json() { python3 -c "import json, sys
b = json.load(open(sys.argv[1]))
$2" "$1"; }

git init -q -b main
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments" "SUCCESS" 60
check "the first commit deploys v1" $?

# 1. the audit log as JSON lines, one per event, the stream's shape, oldest first
KANARIA_TOKEN=tok-alice "$bin" events --json >"$tmp/ev" 2>"$tmp/err"
st=$?; check "kanaria events --json exits 0 ($(cat "$tmp/err"))" "$st"
n=$(sql "select count(*) from events")
python3 - "$tmp/ev" "$n" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert len(ev) >= int(sys.argv[2]), (len(ev), sys.argv[2])
ids = [e["id"] for e in ev]
assert ids == sorted(ids) and ids[0] == 1, ids
assert set(ev[0]) == {"id", "type", "at", "repo", "app", "deployment", "actor", "message"}, ev[0]
assert any(e["type"] == "SUCCEEDED" and e["app"] == "hello" for e in ev), ev
PY
check "every event, oldest first, in the stream's shape ($n in the store)" $?

# 2. paged: 1500 old events of another app come whole, pages of 1000; --since and --type filter
sql "with recursive n(i) as (select 1 union all select i + 1 from n where i < 1500)
     insert into events (at, type, repo, app, deployment, actor, message)
     select 1000 + i, 'STAGE_LOG', 'deploy', 'bulk', 0, 'kanaria', 'line ' || i from n" &&
KANARIA_TOKEN=tok-alice "$bin" events --app bulk >"$tmp/bulk" 2>"$tmp/err"
st=$?; check "kanaria events --app bulk exits 0 ($(cat "$tmp/err"))" "$st"
[ "$(grep -c ' bulk ' "$tmp/bulk")" = 1500 ] && head -n1 "$tmp/bulk" | grep -q '^ID .*MESSAGE$' &&
    grep -q 'line 1500$' "$tmp/bulk" && ! grep -q ' hello ' "$tmp/bulk"
st=$?; check "its 1500 events, read over two pages, and only its ($(grep -c ' bulk ' "$tmp/bulk"))" "$st"
KANARIA_TOKEN=tok-alice "$bin" events --app bulk --since 1h --json >"$tmp/since" &&
    [ ! -s "$tmp/since" ] &&
    TZ=UTC KANARIA_TOKEN=tok-alice "$bin" events --since "1970-01-01 00:00:02" --app bulk --json |
    python3 -c 'import json,sys; l=[json.loads(x) for x in sys.stdin]
assert len(l) == 501 and l[0]["message"] == "line 1000", (len(l), l[:1])'
check "--since (a duration ago, a local time) leaves out what came before" $?
KANARIA_TOKEN=tok-alice "$bin" events --type SUCCEEDED --json >"$tmp/ok" &&
    python3 -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]
assert len(l) == 1 and l[0]["type"] == "SUCCEEDED" and l[0]["deployment"] == 1, l' "$tmp/ok"
check "--type SUCCEEDED gives the one success, named as notifications name it" $?
[ "$(code GET '/api/v1/audit?limit=2&app=bulk' tok-alice)" = 200 ] && json "$tmp/body" '
assert [e["message"] for e in b["events"]] == ["line 1", "line 2"], b
assert b["more"] is True and b["next"] == b["events"][1]["id"] and b["last_event_id"] >= b["next"], b'
st=$?; check "GET /api/v1/audit pages: events, next, more, last_event_id ($(cat "$tmp/body"))" "$st"
[ "$(code GET '/api/v1/audit?limit=0' tok-alice)" = 400 ] && grep -q "'limit'" "$tmp/body" &&
    [ "$(code GET '/api/v1/audit?after=x' tok-alice)" = 400 ] &&
    [ "$(code GET '/api/v1/audit' '')" = 401 ]
st=$?; check "a bad limit or after is 400 naming it; no token is 401 ($(cat "$tmp/body"))" "$st"
"$bin" events --since yesterday >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q -- "--since wants" "$tmp/err"
check "a --since that is neither a duration nor a time is a usage error" $?

# 3. the stream from Last-Event-ID: 0 starts at the first event (it sent nothing before)
# (a stream never ends: each try reads it for 3 s; under ASan, kanaria may be busy for seconds
# handing out the 1500 events written above, so the first tries may see nothing)
for _ in $(seq 1 10); do
    curl -sN --max-time 3 -H "Authorization: Bearer tok-alice" -H "Last-Event-ID: 0" \
        "$KANARIA_ADDR/api/v1/events" >"$tmp/sse"
    grep -q '^id: 1$' "$tmp/sse" && break
done
grep -q '^id: 1$' "$tmp/sse"
st=$?; check "Last-Event-ID: 0 replays from the first event ($(head -c 200 "$tmp/sse"))" "$st"

# 4. follow: what is written after it started comes through the stream
KANARIA_TOKEN=tok-alice "$bin" events --follow --json --app hello --type SUCCEEDED \
    >"$tmp/follow" 2>&1 &
spid=$!
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

# 5. status: the stage with its id, its time left and approvals; the traffic split
curl -sf -H "Authorization: Bearer tok-alice" "$KANARIA_ADDR/api/v1/apps/hello" >"$tmp/app"
json "$tmp/app" 'r = b["current"]["running_stage"]
assert (r["index"], r["name"], r["id"]) == (4, "WAIT_APPROVAL", "gate"), r'
st=$?; check "the API's current.running_stage names the stage's id ($(cat "$tmp/app"))" "$st"
KANARIA_TOKEN=tok-alice "$bin" status >"$tmp/st" 2>&1
grep -E '^hello .* WAIT_APPROVAL \(gate\) (59m[0-9]+s|1h0m) left 0/2' "$tmp/st"
st=$?; check "the table shows the gate with its time left and 0/2 ($(cat "$tmp/st"))" "$st"
KANARIA_TOKEN=tok-alice "$bin" status hello >"$tmp/st" 2>&1
grep -q '^running stage: *WAIT_APPROVAL (gate): .* left, 0 of 2 approvals (alice, bob)$' "$tmp/st" &&
    grep -q '^traffic: *primary 70% · canary 30%$' "$tmp/st"
st=$?; check "one app shows the stage's wait and the traffic split ($(cat "$tmp/st"))" "$st"
KANARIA_TOKEN=tok-alice timeout 60 "$bin" status hello --watch --until-done >"$tmp/watch" 2>&1 &
rpid=$!
"$bin" status --until-done >/dev/null 2>&1
check "--until-done without --watch is a usage error" $(($? == 2 ? 0 : 1))

# 6. get deployment: approvals "1 of 2", the analysis's numbers, the plan, the log
KANARIA_TOKEN=tok-alice "$bin" approve hello >/dev/null 2>&1
check "alice approves" $?
KANARIA_TOKEN=tok-alice "$bin" get deployment 2 >"$tmp/get" 2>&1
check "kanaria get deployment 2 exits 0" $?
grep -Eq '^  4 +WAIT_APPROVAL \(gate\) +RUNNING .*1 of 2 approvals \(alice, bob\)$' "$tmp/get" &&
    grep -Eq '^        approved by alice at ' "$tmp/get" &&
    grep -Eq '^  3 +WAIT \(settle\) +SUCCESS ' "$tmp/get" &&
    grep -Eq '^        .* level PASS: .*; canary \[' "$tmp/get" &&
    grep -q '^plan: ' "$tmp/get" && grep -q '^log:' "$tmp/get" &&
    grep -Eq '^  5 +PRIMARY_ROLLOUT +NOT_STARTED' "$tmp/get"
st=$?; check "it shows each stage, the approval, the analysis and the plan ($(cat "$tmp/get"))" "$st"
KANARIA_TOKEN=tok-alice "$bin" get deployment 2 --json | python3 -c 'import json,sys
b = json.load(sys.stdin); assert b["id"] == 2 and b["pipeline"][4]["id"] == "gate", b
assert [s["id"] for s in b["stages"][:6]] == ["", "", "errors", "settle", "gate", ""], b["stages"]
m = [e["message"] for e in b["events"]]
assert "stage 2 ANALYSIS (errors): SUCCESS" in m and "stage 4 WAIT_APPROVAL (gate): RUNNING" in m, m'
check "--json is the API's deployment object; its stages and events name the stage ids" $?
grep -q 'stage=ANALYSIS stage_id=errors msg=' "$tmp/log"
check "the engine's log lines name the stage's id" $?
"$bin" get app hello >/dev/null 2>&1
check "get of another resource is a usage error" $(($? == 2 ? 0 : 1))
kill -0 "$rpid" 2>/dev/null
check "status --watch --until-done runs while the deployment does" $?

KANARIA_TOKEN=tok-bob "$bin" approve hello >/dev/null 2>&1
check "bob approves" $?
wait_for "v2 deployed" "select status from deployments where id = 2" "SUCCESS" 60
check "v2 succeeds" $?
wait "$rpid"
rc=$?
rpid=
check "status --watch --until-done exits 0 once nothing deploys (exit $rc)" $rc
ok=1
for _ in $(seq 1 50); do
    [ "$(wc -l <"$tmp/follow")" -ge 2 ] && { ok=0; break; }
    sleep 0.2
done
python3 -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]
assert [e["deployment"] for e in l] == [1, 2], l' "$tmp/follow"
st=$?; check "events --follow printed v1's success, then v2's from the stream ($(cat "$tmp/follow"))" "$st"

# 6b. events --follow across a restart of kanaria: it reconnects from the newest event it saw
# (Last-Event-ID) and misses nothing, shows nothing twice; a follower whose --timeout passes
# while kanaria is down gives up with exit 1
relay() {
    sql "insert into events (at, type, repo, app, deployment, actor, message)
         values ($(date +%s)000, 'STAGE_LOG', 'deploy', 'relay', 0, 'kanaria', '$1')"
}
lines() { # FILE N: wait up to 30 s for FILE to have N lines
    for _ in $(seq 1 150); do
        [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.2
    done
    return 1
}
KANARIA_TOKEN=tok-alice "$bin" events --follow --json --app relay --timeout 60s \
    >"$tmp/relay" 2>"$tmp/relay.err" &
rpid=$!
KANARIA_TOKEN=tok-alice "$bin" events --follow --json --app relay --timeout 1s \
    >"$tmp/short" 2>"$tmp/short.err" &
load_pid=$!
relay before
lines "$tmp/relay" 1 && lines "$tmp/short" 1
check "both followers get the event written before the restart" $?
kill -TERM "$pid"
wait "$pid"
pid=
relay during
wait "$load_pid"
rc=$?
load_pid=
[ "$rc" = 1 ] && grep -q "gave up reconnecting after 1s (--timeout)" "$tmp/short.err"
st=$?; check "a follower gives up after --timeout, exit 1 (exit $rc: $(cat "$tmp/short.err"))" "$st"
start
relay after
lines "$tmp/relay" 3
python3 -c 'import json,sys; l=[json.loads(x)["message"] for x in open(sys.argv[1])]
assert l == ["before", "during", "after"], l' "$tmp/relay" &&
    grep -q "reconnecting in 1s" "$tmp/relay.err"
st=$?; check "events --follow reconnects after a restart, each event once ($(cat "$tmp/relay" "$tmp/relay.err"))" "$st"
kill "$rpid" 2>/dev/null
wait "$rpid" 2>/dev/null
rpid=

# 7. a server whose certificate no system CA signed: the error says to set KANARIA_CACERT
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" -days 1 >/dev/null 2>&1
openssl s_server -quiet -accept "127.0.0.1:$tls" -cert "$tmp/tls.crt" -key "$tmp/tls.key" -www \
    >/dev/null 2>&1 &
ext_pid=$!
ok=1
for _ in $(seq 1 50); do
    KANARIA_ADDR="https://127.0.0.1:$tls" "$bin" status >/dev/null 2>"$tmp/err"
    grep -q KANARIA_CACERT "$tmp/err" && { ok=0; break; }
    sleep 0.2
done
check "a certificate no system CA signed names KANARIA_CACERT ($(cat "$tmp/err"))" $ok
KANARIA_CACERT="$tmp/tls.crt" KANARIA_ADDR="https://127.0.0.1:$tls" "$bin" status >/dev/null \
    2>"$tmp/err"
! grep -qi 'certificate\|KANARIA_CACERT' "$tmp/err"
st=$?; check "with KANARIA_CACERT the certificate is trusted ($(cat "$tmp/err"))" "$st"
kill "$spid" 2>/dev/null
spid=
stop_kanaria
