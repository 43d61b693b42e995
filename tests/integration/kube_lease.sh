#!/usr/bin/env bash
# Two `kanaria serve` (dataDirs a and b) on one fake API server (tests/fakes/kube_fake.py) with
# leaderElection on the Lease default/kanaria (lease 3 s, renew 2 s, retry 0.5 s):
#  1. a takes the Lease and deploys web:1; b, started after it, serves its API (/healthz) but
#     deploys nothing and logs that it waits for a's lead (its store has no deployment);
#  2. a commit web:2 is deployed by a; b still deploys nothing;
#  3. kill -9 a: b takes the Lease (leaseTransitions 1) within the lease duration and a few
#     retries, then deploys the head (web:2 in the fake, a deployment in b's store);
#  4. b frozen (SIGSTOP) past the lease: a started again takes the Lease; b, thawed (SIGCONT),
#     finds it lost and exits 1 without deploying web:3, which a deploys;
#  5. SIGTERM: a exits 0 and releases the Lease (no holder, leaseDurationSeconds 1).
# The Lease object in the fake is the judge, never kanaria's own word.
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../kube/kube_fake.sh"

for c in python3 openssl curl; do
    if ! command -v "$c" >/dev/null; then
        echo "SKIPPED: $c is not installed (make deps)"
        [ "${CI:-}" = true ] && { echo "FAIL: CI=true: $c is part of the CI image"; exit 1; }
        exit 77
    fi
done

tmp=$(mktemp -d)
pid=
apid=
bpid=
stop_all() {
    [ -n "$apid" ] && kill -9 "$apid" 2>/dev/null
    [ -n "$bpid" ] && { kill -CONT "$bpid"; kill -9 "$bpid"; } 2>/dev/null
    [ -n "$kube_fake_pid" ] && kill "$kube_fake_pid" 2>/dev/null
    cat "$tmp/a.log" "$tmp/b.log" >"$tmp/log" 2>/dev/null
    cleanup
}
trap stop_all EXIT
# both instances' logs, for summary
logs() { cat "$tmp/a.log" "$tmp/b.log" >"$tmp/log" 2>/dev/null; }
need() {
    check "$1" "$2"
    [ "$2" -eq 0 ] || { logs; summary; exit 1; }
}
case_() { echo "--- case $1: $2"; }

kube_fake_start "$tmp"
need "the fake API server answers (${kube_fake_error:-$kube_fake_url})" $?
export HOME=$tmp
unset KUBECONFIG

# lease_field EXPR: a field of the Lease default/kanaria in the fake ("" when absent)
lease_field() {
    kube_view get Lease default kanaria 2>/dev/null | python3 -c 'import json, sys
try:
    o = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception:
    v = ""
print("" if v is None else v)' "$1"
}
holder() { lease_field 'o["spec"].get("holderIdentity", "")'; }
image() {
    kube_view get Deployment shop web 2>/dev/null | python3 -c 'import json, sys
try:
    print(json.load(sys.stdin)["spec"]["template"]["spec"]["containers"][0]["image"])
except Exception:
    print("")'
}
# identity_of LOG: the identity a kanaria logged when it took the Lease
identity_of() { sed -n 's/.*holding Lease default\/kanaria as \([^" ]*\).*/\1/p' "$1" | tail -n1; }
# wait_until SECONDS DESCRIPTION COMMAND...: poll every 0.2 s
wait_until() {
    local s=$1 d=$2 end=$((SECONDS + $1))
    shift 2
    while [ "$SECONDS" -lt "$end" ]; do
        "$@" && return 0
        sleep 0.2
    done
    echo "  waited $s s for $d"
    return 1
}
sqlin() { # DATADIR SQL
    python3 -c 'import sqlite3,sys
c = sqlite3.connect(sys.argv[1], timeout=5)
for row in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))' \
        "$1/kanaria.db" "$2" 2>/dev/null
}

config() { # NAME PORT
    cat >"$tmp/$1.yaml" <<YAML
dataDir: $tmp/$1
listen: 127.0.0.1:$2
driftInterval: 1s
platforms:
  - name: k8s
    type: kubernetes
    kubeconfig: $tmp/kubeconfig
    leaderElection: {namespace: default, lease: kanaria, leaseDuration: 3s, renewDeadline: 2s, retryPeriod: 500ms}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
}
aport=$(free_port)
bport=$(free_port)
config a "$aport"
config b "$bport"

mkdir -p "$tmp/upstream/web"
app() { # IMAGE
    cat >"$tmp/upstream/web/deploy.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers: [{name: web, image: $1}]
YAML
    cat >"$tmp/upstream/web/service.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
YAML
    cat >"$tmp/upstream/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  platform: k8s
  manifests: [namespace.yaml, service.yaml, deploy.yaml]
  kubernetes:
    namespace: shop
    trafficRouting: {method: podselector}
YAML
    printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n' >"$tmp/upstream/web/namespace.yaml"
    git add -A && git commit -qm "web $1"
}
git init -q -b main
app web:1
"$bin" validate "$tmp/upstream" -c "$tmp/a.yaml" >"$tmp/validate.out" 2>&1
need "the app and config are valid ($(tr '\n' ' ' <"$tmp/validate.out"))" $?

start_a() { "$bin" serve -c "$tmp/a.yaml" >>"$tmp/a.log" 2>&1 & apid=$!; }
start_b() { "$bin" serve -c "$tmp/b.yaml" >>"$tmp/b.log" 2>&1 & bpid=$!; }
a_holds() { [ -n "$(identity_of "$tmp/a.log")" ] && [ "$(holder)" = "$(identity_of "$tmp/a.log")" ]; }
b_holds() { [ -n "$(identity_of "$tmp/b.log")" ] && [ "$(holder)" = "$(identity_of "$tmp/b.log")" ]; }
image_is() { [ "$(image)" = "$1" ]; }
b_waits() { grep -q "waiting for the lead of Lease default/kanaria (held by $(identity_of "$tmp/a.log"))" "$tmp/b.log"; }
healthy() { curl -sf -o /dev/null "http://127.0.0.1:$1/healthz"; }

# ---- 1. one leads, the other waits -------------------------------------------------------------

case_ 1 "a leads and deploys, b waits"
start_a
wait_until 30 "a to hold the Lease" a_holds
need "a holds the Lease default/kanaria ($(holder))" $?
wait_until 60 "web:1 in the fake" image_is web:1
check "a deployed web:1 ($(image))" $?
start_b
wait_until 30 "b to wait for a" b_waits
check "b logs that it waits for the lead of Lease default/kanaria held by a" $?
wait_until 30 "b's API" healthy "$bport"
check "b serves its API meanwhile (/healthz)" $?
[ "$(lease_field 'o["spec"]["leaseTransitions"]')" = 0 ]
check "the Lease was created with no transition" $?

case_ 2 "a deploys a new commit; b still deploys nothing"
app web:2
wait_until 60 "web:2 in the fake" image_is web:2
check "a deployed web:2 ($(image))" $?
sleep 2 # b's fetch interval and more: it must still have planned nothing
[ "$(sqlin "$tmp/b" 'select count(*) from deployments')" = 0 ]
check "b's store holds no deployment while a leads ($(sqlin "$tmp/b" 'select count(*) from deployments'))" $?
a_holds
check "a still holds the Lease" $?

# ---- 3. kill -9 the leader --------------------------------------------------------------------

case_ 3 "kill -9 a: b takes over and deploys"
kill -9 "$apid"
wait "$apid" 2>/dev/null
apid=
last_renew=$(lease_field 'o["spec"]["renewTime"]')
wait_until 30 "b to take the Lease" b_holds
check "b took the Lease after a died ($(holder))" $?
# by the Lease's own times (one machine's clock): no sooner than the lease after a's last renew,
# and within it plus a few retries (0.5 s, jitter 1.2) and requests
took=$(python3 -c 'import datetime, sys
t = [datetime.datetime.strptime(x, "%Y-%m-%dT%H:%M:%S.%fZ") for x in sys.argv[1:]]
print("%.1f" % (t[1] - t[0]).total_seconds())' "$last_renew" "$(lease_field 'o["spec"]["acquireTime"]')")
python3 -c 'import sys; sys.exit(not 3.0 <= float(sys.argv[1]) <= 10.0)' "$took"
check "b took it $took s after a's last renew: after the lease (3 s), within a few retries" $?
echo "  b took the Lease $took s after a's last renew"
[ "$(lease_field 'o["spec"]["leaseTransitions"]')" = 1 ]
check "leaseTransitions is 1" $?
wait_until 60 "a deployment of web:2 in b's store" \
    test "$(sqlin "$tmp/b" "select status from deployments order by id desc limit 1")" = SUCCESS
check "b deployed the head once it led ($(sqlin "$tmp/b" 'select id, strategy, status from deployments'))" $?

# ---- 4. a leader that lost the Lease stops ------------------------------------------------------

case_ 4 "b frozen past the lease loses it, and exits 1"
kill -STOP "$bpid"
start_a
wait_until 20 "a to take the Lease again" a_holds
check "a took the Lease while b was frozen" $?
kill -CONT "$bpid"
app web:3
for _ in $(seq 1 50); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.2; done
wait "$bpid"
rc=$?
bpid=
[ "$rc" -eq 1 ]
check "b, thawed, finds the lead lost and exits 1 (exit $rc)" $?
grep -q "lost the lead of Lease default/kanaria" "$tmp/b.log"
check "b logs why it stopped" $?
wait_until 60 "web:3 in the fake" image_is web:3
check "a deployed web:3 ($(image))" $?
[ "$(sqlin "$tmp/b" "select count(*) from deployments where commit_id = '$(git rev-parse HEAD)'")" = 0 ]
check "b never planned web:3" $?

case_ 5 "SIGTERM releases the Lease"
kill -TERM "$apid"
wait "$apid"
check "a exits 0 on SIGTERM" $?
apid=
[ "$(holder)" = "" ] && [ "$(lease_field 'o["spec"]["leaseDurationSeconds"]')" = 1 ]
check "a released the Lease as it stopped: no holder, leaseDurationSeconds 1 (holder [$(holder)])" $?
logs
summary
