#!/usr/bin/env bash
# A freeze window against a real `kanaria serve` (local platform, real HAProxy): v1 deploys; a
# reload (SIGHUP) adds a fixed window from now to about 12 s ahead; v2, committed inside it, waits
# FROZEN with the window's name and end in its reason (in the store, `kanaria status hello` and
# the API's `freeze`), and starts once the window has ended. Then, inside a window of an hour,
# `kanaria rollback hello --to v1` passes, recorded as a GATE_PASSED event; v3 waits in that
# window until a reload removes it.
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
export KANARIA_ADDR="http://127.0.0.1:$api" KANARIA_TOKEN=tok-olga
unset KANARIA_CACERT
mkdir -p "$tmp/upstream/hello"
config() { # the freezeWindows section, as YAML lines
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
users:
  - {name: olga, role: operator, tokenSha256: $(hash tok-olga)}
$1
YAML
}
rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
config ""
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
YAML
git init -q -b main
test_service "$tmp/upstream/hello" hello v1 "$bind"
git add -A && git commit -qm "hello v1"
v1=$(git rev-parse HEAD)

# 1. v1 deploys while no window is declared
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "v1 deploys with no window ($(sql "select reason from deployments where id = 1"))" $rc

# 2. a window from now to now + 12 s, by a reload; the API shows it
now=$(date +%s)
end=$((now + 12))
config "freezeWindows:
  - {name: release, from: $(rfc3339 $((now - 60))), to: $(rfc3339 $end), apps: [\"hel*\"]}"
kill -HUP "$pid"
for _ in $(seq 1 50); do
    curl -s -H "Authorization: Bearer tok-olga" "$KANARIA_ADDR/api/v1/apps/hello" >"$tmp/app.json"
    grep -q '"release"' "$tmp/app.json" && break
    sleep 0.1
done
python3 - "$tmp/app.json" "$end" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["freeze"]
assert a["active"]["name"] == "release", a
assert a["active"]["until"] == int(sys.argv[2]) * 1000, a
assert a["active"]["until_local"].endswith(" UTC"), a
assert a["next"] is None, a
PY
rc=$?
check "after the reload the API shows the open window ($(head -c 300 "$tmp/app.json"))" $rc

# 3. v2 committed inside it waits FROZEN, with the window and its end
test_service "$tmp/upstream/hello" hello v2 "$bind"
git commit -qam "hello v2"
wait_for "v2 frozen" "select status from deployments where id = 2" "FROZEN" 10
check "v2 waits FROZEN inside the window" $?
reason=$(sql "select reason from deployments where id = 2")
grep -q "^freeze window 'release' is open until .* UTC ($(rfc3339 $end))$" <<<"$reason"
check "its reason names the window and its end ($reason)" $?
out=$("$bin" status hello 2>&1)
grep -q "FROZEN" <<<"$out" && grep -q "^waiting: *freeze window 'release'" <<<"$out" &&
    grep -q "^freeze: *window 'release' open until" <<<"$out"
check "kanaria status hello shows it held and the open window ($out)" $?
out=$("$bin" status 2>&1)
grep -q "hello .*FROZEN.*freeze window 'release'" <<<"$out"
check "kanaria status shows the held deployment with why ($out)" $?
out=$(count 10)
[ "$out" = "v1 10" ]
check "v1 still serves while v2 waits ($out)" $?

# 4. the window ends: v2 starts, not before
wait_for "v2 deployed" "select status from deployments where id = 2" "SUCCESS" 30
check "v2 starts once the window has ended" $?
started=$(sql "select started_at from deployments where id = 2")
[ "$started" -ge $((end * 1000)) ]
check "it started after the window's end ($started >= ${end}000)" $?
[ "$(sql "select group_concat(type) from events where deployment = 2 and type in
    ('PLANNED', 'FROZEN', 'RUNNING', 'SUCCESS')")" = "PLANNED,FROZEN,RUNNING,SUCCESS" ]
check "its events: PLANNED, FROZEN, RUNNING, SUCCESS" $?

# 5. inside a window of an hour a rollback passes, recorded
now=$(date +%s)
config "freezeWindows:
  - {name: release, from: $(rfc3339 $((now - 60))), to: $(rfc3339 $((now + 3600)))}"
kill -HUP "$pid"
for _ in $(seq 1 50); do
    "$bin" status hello 2>/dev/null | grep "^freeze: *window 'release'" >/dev/null && break
    sleep 0.1
done
out=$("$bin" rollback hello --to "${v1:0:7}" 2>&1)
check "kanaria rollback is accepted inside the window ($out)" $?
wait_for "rolled back" "select status from deployments where id = 3" "SUCCESS" 20
rc=$?
check "the rollback runs through the window ($(sql "select reason from deployments where id = 3"))" $rc
msg=$(sql "select message from events where deployment = 3 and type = 'GATE_PASSED'")
grep -q "^passed the gates as a rollback; without that: freeze window 'release' is open until" <<<"$msg"
check "the pass is recorded as GATE_PASSED ($msg)" $?
out=$(count 10)
[ "$out" = "v1 10" ]
check "v1 serves again ($out)" $?

# 6. v3 waits in that window; a reload that removes the window lets it start at once
test_service "$tmp/upstream/hello" hello v3 "$bind"
git commit -qam "hello v3"
wait_for "v3 frozen" "select status from deployments where id = 4" "FROZEN" 10
check "v3 waits FROZEN in the window of an hour" $?
config ""
kill -HUP "$pid"
wait_for "v3 deployed" "select status from deployments where id = 4" "SUCCESS" 10
check "a reload without the window lets v3 start, not an hour later" $?

stop_kanaria
