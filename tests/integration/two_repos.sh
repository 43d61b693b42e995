#!/usr/bin/env bash
# Two repositories that each have an app `web` (local platform, real HAProxy): they are two apps.
# Each gets its own HAProxy backend and frontend, its own instances and its own record; each
# bind answers with its own app's version; `kanaria status` shows both; pruning one leaves the
# other running, untouched.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
metrics=$(free_port)
bind_a=$(free_port)
bind_b=$(free_port)
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
  - name: alpha
    url: "file://$tmp/upstream"
    branch: main
    pollInterval: 1s
  - name: beta
    url: "file://$tmp/upstream-b"
    branch: main
    pollInterval: 1s
users:
  - {name: olga, role: operator, tokenSha256: $(hash tok-olga)}
YAML
gitb() {
    command git -C "$tmp/upstream-b" -c user.name=dev -c user.email=dev@example.com \
        -c commit.gpgsign=false "$@"
}
app() { # REPO_DIR BIND VERSION
    mkdir -p "$1/web"
    cat >"$1/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  manifests: [service.yaml]
YAML
    test_service "$1/web" web "$3" "$2" 1
}
op() { KANARIA_TOKEN=tok-olga "$bin" "$@"; }
key() { # REPOSITORY: the name the local platform gave its app web (apps.json)
    python3 -c 'import json, sys
recs = json.load(open(sys.argv[1]))
print(" ".join(k for k, r in recs.items() if r.get("repository") == sys.argv[2]))' \
        "$tmp/data/local/local/apps.json" "$1"
}
pids() { # KEY: the pids of its instances, from their pid files
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

mkdir -p "$tmp/upstream" "$tmp/upstream-b"
git init -q -b main
gitb init -q -b main
app "$tmp/upstream" "$bind_a" alpha-v1
app "$tmp/upstream-b" "$bind_b" beta-v1
git add -A && git commit -qm "web of alpha"
gitb add -A && gitb commit -qm "web of beta"
start
wait_for "both deployed" "select count(*) from deployments where app = 'web' and
    status = 'SUCCESS'" 2 90
check "both repositories' web are deployed" $?

# 1. two apps: two backends, two sets of instances, each bind its own answer
key_a=$(key alpha)
key_b=$(key beta)
[ -n "$key_a" ] && [ -n "$key_b" ] && [ "$key_a" != "$key_b" ]
check "two records in apps.json ($key_a for alpha, $key_b for beta)" $?
grep -q "^backend $key_a\$" "$tmp/data/local/local/haproxy.cfg" &&
    grep -q "^backend $key_b\$" "$tmp/data/local/local/haproxy.cfg"
check "two HAProxy backends ($key_a, $key_b)" $?
pids_a=$(pids "$key_a")
pids_b=$(pids "$key_b")
[ -n "$pids_a" ] && [ -n "$pids_b" ] && [ "$pids_a" != "$pids_b" ]
check "two sets of instances ($pids_a; $pids_b)" $?
[ "$(answer "$bind_a")" = alpha-v1 ] && [ "$(answer "$bind_b")" = beta-v1 ]
rc=$?
check "each bind answers with its own app ($(answer "$bind_a"), $(answer "$bind_b"))" $rc

# 2. kanaria status shows both
op status >"$tmp/status"
grep -E "^web +alpha +#[0-9]+ +SUCCESS" "$tmp/status" >/dev/null &&
    grep -E "^web +beta +#[0-9]+ +SUCCESS" "$tmp/status" >/dev/null
rc=$?
check "kanaria status shows web of alpha and of beta ($(tr '\n' '|' <"$tmp/status"))" $rc
sleep 3 # drift checks: each app is in sync with its own commit
[ "$(sql "select count(*) from apps where name = 'web' and drift = ''")" = 2 ]
rc=$?
check "neither app drifts ($(sql "select repo, drift from apps where name = 'web'" | tr '\n' ' '))" $rc

# 3. beta's web removed: pruned alone, alpha's untouched
gitb rm -rq web && gitb commit -qm "web of beta removed"
wait_for "beta's web orphaned" "select count(*) from events where repo = 'beta' and
    app = 'web' and type = 'APP_ORPHANED'" 1 30
check "deleting beta's folder orphans beta's web" $?
op prune web --repo beta >"$tmp/out" 2>&1
rc=$?
check "kanaria prune web --repo beta ($(cat "$tmp/out"))" $rc
wait_for "beta's web pruned" "select count(*) from events where repo = 'beta' and
    app = 'web' and type = 'APP_PRUNED'" 1 30
check "the prune is an APP_PRUNED event of beta's web" $?
! alive "$pids_b" && closed "$bind_b"
check "beta's instances ($pids_b) are stopped and its bind closed" $?
[ "$(answer "$bind_a")" = alpha-v1 ] && [ "$(pids "$key_a")" = "$pids_a" ] &&
    [ "$(key alpha)" = "$key_a" ] && [ -z "$(key beta)" ]
check "alpha's web still answers from the same instances, its record kept" $?
grep -q "^backend $key_a\$" "$tmp/data/local/local/haproxy.cfg" &&
    ! grep -q "^backend $key_b\$" "$tmp/data/local/local/haproxy.cfg"
check "only alpha's backend is left" $?

stop_kanaria
