#!/usr/bin/env bash
# Apps whose folder changes under a running `kanaria serve` (local platform, real HAProxy): a
# second folder that declares a running app's name makes both folders invalid and leaves the
# running app as it is; a deleted folder leaves its app running, shown as orphaned (status, API,
# /metrics) until `kanaria prune` removes it (instances, frontend, backend), or at once when its
# config has `prune: true`; a valid folder that comes back deploys its app again.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
metrics=$(free_port)
bind_hello=$(free_port)
bind_gone=$(free_port)
bind_auto=$(free_port)
bind_evil=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
driftInterval: 1s
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
YAML
app() { # FOLDER NAME BIND VERSION [EXTRA SPEC LINE]
    mkdir -p "$tmp/upstream/$1"
    cat >"$tmp/upstream/$1/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $2}
spec:
  manifests: [service.yaml]
  trigger: {onOutOfSync: true}
${5:-}
YAML
    test_service "$tmp/upstream/$1" "$2" "$4" "$3" 1
}
op() { KANARIA_TOKEN=tok-olga "$bin" "$@"; }
pids() { # APP: the pids of its instances, from their pid files
    python3 -c 'import glob, json, sys
print(" ".join(sorted(str(json.load(open(f)).get("pid", "")) for f in glob.glob(sys.argv[1] + "/*.json"))))' \
        "$tmp/data/local/local/$1"
}
alive() { local p; for p in $1; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
answer() { curl -s --max-time 2 "http://127.0.0.1:$1/"; } # BIND
closed() { # BIND: wait (at most 15s) until nothing accepts connections on it
    for _ in $(seq 1 75); do
        curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$1/"
        [ $? -eq 7 ] && return 0
        sleep 0.2
    done
    return 1
}
events() { sql "select count(*) from events where app = '$1' and type = '$2'"; }

mkdir -p "$tmp/upstream"
git init -q -b main
app hello hello "$bind_hello" v1
app gone gone "$bind_gone" v1
app auto auto "$bind_auto" v1 "  prune: true"
git add -A && git commit -qm "three apps"
start
wait_for "three apps deployed" "select count(*) from deployments where status = 'SUCCESS'" 3 90
check "the first commit deploys hello, gone and auto" $?
hello_pids=$(pids hello)
[ -n "$hello_pids" ] && [ "$(answer "$bind_hello")" = v1 ]
check "hello serves v1 ($hello_pids)" $?

# 1. a second folder declaring hello: both folders invalid, hello's instances untouched
app evil hello "$bind_evil" evil
git add -A && git commit -qm "evil declares hello"
wait_for "both folders invalid" "select count(*) from events where app = 'hello' and
    type = 'INVALID_APP'" 2 30
check "both folders that declare hello are INVALID_APP events" $?
sql "select message from events where type = 'INVALID_APP' order by id" >"$tmp/invalid"
grep -q "^hello/app.kanaria.yaml: app name 'hello' is also used by evil/app.kanaria.yaml" "$tmp/invalid" &&
    grep -q "^evil/app.kanaria.yaml: app name 'hello' is also used by hello/app.kanaria.yaml" "$tmp/invalid"
rc=$?
check "each error is located and names the other folder ($(tr '\n' ' ' <"$tmp/invalid"))" $rc
"$bin" validate "$tmp/upstream" >"$tmp/validate" 2>&1
[ $? -eq 1 ] && grep -q "invalid hello" "$tmp/validate" && [ "$(grep -c "also used by" "$tmp/validate")" = 2 ]
check "kanaria validate rejects the same repository the same way" $?
sleep 3 # a few polls and drift checks
[ "$(sql "select count(*) from deployments where app = 'hello'")" = 1 ]
check "no deployment is planned for hello at that commit" $?
[ "$(pids hello)" = "$hello_pids" ] && [ "$(answer "$bind_hello")" = v1 ] &&
    [ "$(answer "$bind_evil")" = "" ]
rc=$?
check "hello runs the same instances ($(pids hello)) and still serves v1; evil serves nothing" $rc
[ "$(sql "select path from apps where name = 'hello'")" = hello/app.kanaria.yaml ]
check "the app keeps the folder it runs from" $?
git rm -rq evil && git commit -qm "evil removed"

# 2. a deleted folder: orphaned, still serving, shown everywhere
gone_pids=$(pids gone)
git rm -rq gone && git commit -qm "gone removed"
wait_for "gone orphaned" "select count(*) from events where app = 'gone' and
    type = 'APP_ORPHANED'" 1 30
check "deleting gone's folder is an APP_ORPHANED event" $?
op status >"$tmp/status"
grep -E "^gone +deploy +#[0-9]+ +ORPHANED" "$tmp/status" >/dev/null &&
    grep -E "^hello +deploy +#[0-9]+ +SUCCESS" "$tmp/status" >/dev/null
rc=$?
check "kanaria status shows gone ORPHANED, hello SUCCESS ($(tr '\n' '|' <"$tmp/status"))" $rc
curl -s -H "Authorization: Bearer tok-vic" "$KANARIA_ADDR/api/v1/apps" | python3 -c '
import json, sys
apps = {a["name"]: a for a in json.load(sys.stdin)["apps"]}
assert apps["gone"]["orphaned"] is True and apps["gone"]["orphaned_since"] > 0, apps["gone"]
assert apps["hello"]["orphaned"] is False, apps["hello"]'
check "GET /api/v1/apps says gone is orphaned, and since when" $?
curl -s -H "Authorization: Bearer tok-vic" "$KANARIA_ADDR/metrics" >"$tmp/metrics"
grep -qx 'kanaria_app_orphaned{app="gone"} 1' "$tmp/metrics" &&
    grep -qx 'kanaria_app_orphaned{app="hello"} 0' "$tmp/metrics"
check "/metrics: kanaria_app_orphaned is 1 for gone, 0 for hello" $?
sleep 3 # polls and drift checks: no self-heal, no second event
[ "$(answer "$bind_gone")" = v1 ] && [ "$(pids gone)" = "$gone_pids" ] &&
    [ "$(events gone APP_ORPHANED)" = 1 ] &&
    [ "$(sql "select count(*) from deployments where app = 'gone'")" = 1 ]
check "gone still serves v1 from the same instances, orphaned once, not redeployed" $?

# 3. prune: refused unless orphaned; then its processes and its frontend are gone
out=$(KANARIA_TOKEN=tok-vic "$bin" prune gone 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 403" <<<"$out"
check "a viewer cannot prune: 403 ($out)" $?
out=$(op prune hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out" && grep -q "not orphaned" <<<"$out"
check "pruning an app whose folder is there is 409 ($out)" $?
op prune gone >"$tmp/out" 2>&1
rc=$?
check "kanaria prune gone ($(cat "$tmp/out"))" $rc
wait_for "gone pruned" "select count(*) from events where app = 'gone' and type = 'APP_PRUNED'" 1 30
check "the prune is an APP_PRUNED event" $?
[ -n "$gone_pids" ] && ! alive "$gone_pids"
check "gone's processes are gone ($gone_pids)" $?
closed "$bind_gone"
check "gone's frontend port no longer accepts connections" $?
op status | grep -E "^gone +deploy +#[0-9]+ +PRUNED" >/dev/null
check "kanaria status shows gone PRUNED" $?
[ "$(answer "$bind_hello")" = v1 ] && [ "$(pids hello)" = "$hello_pids" ]
check "hello still serves, untouched" $?
[ "$(code POST /api/v1/apps/gone/prune tok-olga)" = 409 ]
check "pruning it again is 409" $?

# 4. prune: true in the last good config: removed as soon as its folder is deleted
auto_pids=$(pids auto)
git rm -rq auto && git commit -qm "auto removed"
wait_for "auto pruned" "select actor from events where app = 'auto' and type = 'APP_PRUNED'" \
    kanaria 30
check "deleting auto's folder (prune: true) prunes it" $?
[ -n "$auto_pids" ] && ! alive "$auto_pids" && closed "$bind_auto"
check "auto's processes are gone and its port closed" $?

# 5. an invalid folder taking gone's name does not bring it back; its valid folder does
app broken gone "$bind_gone" v9 "  bogus: 1"
git add -A && git commit -qm "an invalid folder declares gone"
wait_for "broken seen" "select count(*) from events where app = 'gone' and type = 'INVALID_APP'" 1 30
sleep 2
[ "$(events gone APP_RESTORED)" = 0 ] && op status | grep -E "^gone +deploy +#[0-9]+ +PRUNED" >/dev/null
check "an invalid folder declaring gone leaves it pruned" $?
git rm -rq broken && git commit -qm "broken removed"
git checkout -q HEAD~5 -- gone && git commit -qm "gone is back"
wait_for "gone back" "select count(*) from deployments where app = 'gone' and status = 'SUCCESS'" \
    2 60
check "gone's folder back: deployed again" $?
[ "$(events gone APP_RESTORED)" = 1 ] && [ "$(answer "$bind_gone")" = v1 ] &&
    [ "$(sql "select orphaned_at, pruned_at from apps where name = 'gone'")" = "0|0" ]
check "gone is no longer orphaned and serves v1 again" $?

stop_kanaria
