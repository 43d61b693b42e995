#!/usr/bin/env bash
# Two apps on one local platform do not wait for each other: while app alpha's canary waits
# (up to its 10-minute stage timeout) for a health check that never passes, app beta's canary
# fails its 3-second stage, and beta's rollback runs and its deployment ends while alpha's is
# still RUNNING. A cancel of alpha then stops its canary: no process of it is left and HAProxy
# no longer has it.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
bind_a=$(free_port)
bind_b=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
mkdir -p "$tmp/upstream/alpha" "$tmp/upstream/beta"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$(free_port)"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
users:
  - {name: olga, role: operator, tokenSha256: $(hash tok-olga)}
YAML
# app NAME CANARY_TIMEOUT
app() {
    cat >"$tmp/upstream/$1/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $1}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
      timeout: $2
    - name: TRAFFIC_ROUTING
      with: {canary: 50}
    - name: WAIT_APPROVAL
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
app alpha 10m
app beta 3s
test_service "$tmp/upstream/alpha" alpha a1 "$bind_a" 1
test_service "$tmp/upstream/beta" beta b1 "$bind_b" 1
sock="$tmp/data/local/local/haproxy.sock"
# wait_until DESCRIPTION SQL EXPECTED SECONDS: as wait_for, bounded by the wall clock (each
# query takes its own time on a busy machine)
wait_until() {
    local got end=$((SECONDS + $4))
    while [ $SECONDS -lt $end ]; do
        got=$(sql "$2" 2>/dev/null)
        [ "$got" = "$3" ] && return 0
        sleep 0.2
    done
    echo "  waited $4s for $1: expected [$3], got [$got]"
    return 1
}
# status APP: the status of the app's last deployment
status() { sql "select status from deployments where app = '$1' order by id desc limit 1"; }
# haproxy_cmd COMMAND: one runtime-API command to the managed HAProxy, its reply on stdout
haproxy_cmd() {
    python3 - "$sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
print(out.decode(), end="")
PY
}
# canary_pids APP: the pids in the supervisor's files of the app's canary instances
canary_pids() {
    local f
    for f in $(find "$tmp/data/local/local" -path "*$1*" -name 'canary-*.json' 2>/dev/null); do
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid", ""))' "$f"
    done
}

git init -q -b main
git add -A && git commit -qm "alpha a1, beta b1"
start
wait_for "both deployed" "select app, status from deployments order by app" \
    "alpha|SUCCESS
beta|SUCCESS" 60
check "the first commit deploys alpha and beta" $?

# 1. alpha's canary never gets healthy; its stage may wait 10 minutes
test_service "$tmp/upstream/alpha" alpha a2 "$bind_a" 1 ', UNHEALTHY: "1"'
git commit -qam "alpha a2 (never healthy)"
wait_for "alpha's canary starting" "select s.name from stages s join deployments d on
    d.id = s.deployment where d.app = 'alpha' and s.status = 'RUNNING'" "CANARY_ROLLOUT" 30
check "alpha runs its canary stage" $?
apids=
for _ in $(seq 1 50); do
    apids=$(canary_pids alpha)
    [ -n "$apids" ] && break
    sleep 0.2
done
[ -n "$apids" ]
check "alpha's canary process runs (pids [$apids])" $?

# 2. beta's canary fails its 3s stage: beta rolls back and ends while alpha still waits
test_service "$tmp/upstream/beta" beta b2 "$bind_b" 1 ', UNHEALTHY: "1"'
git commit -qam "beta b2 (never healthy)"
wait_for "beta deployment 4" "select count(*) from deployments where app = 'beta'" 2 30
check "beta's new commit starts a deployment" $?
wait_until "beta rolled back" "select status from deployments where app = 'beta' order by id
    desc limit 1" "FAILURE" 90
rc=$?
a=$(status alpha)
check "beta's rollback completes and its deployment ends FAILURE" $rc
[ $rc -eq 0 ] && [ "$a" = RUNNING ]
check "... while alpha's deployment still runs ($a)" $?
reason=$(sql "select reason from deployments where app = 'beta' order by id desc limit 1")
grep -q "rolled back" <<<"$reason"
check "beta's reason says it was rolled back ($reason)" $?
out=$(python3 -c 'import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' "http://127.0.0.1:$bind_b/" 2>&1)
[ "$out" = b1 ]
check "beta's primary serves b1 after its rollback ($out)" $?
[ "$(sql "select s.name from stages s join deployments d on d.id = s.deployment where
    d.app = 'alpha' and s.status = 'RUNNING'")" = CANARY_ROLLOUT ]
check "alpha still waits in its canary stage" $?

# 3. a cancel of alpha stops its canary: the process is gone, HAProxy does not have it
out=$(KANARIA_TOKEN=tok-olga "$bin" cancel alpha 2>&1)
check "alpha's deployment is cancelled ($out)" $?
wait_for "alpha cancelled" "select status from deployments where app = 'alpha' order by id
    desc limit 1" "CANCELLED" 30
check "alpha's deployment ends CANCELLED" $?
gone=1
for _ in $(seq 1 50); do
    gone=0
    for p in $apids; do
        kill -0 "$p" 2>/dev/null && gone=1
    done
    [ $gone -eq 0 ] && break
    sleep 0.2
done
[ $gone -eq 0 ] && [ -z "$(canary_pids alpha)" ]
check "no process of alpha's canary is left" $?
out=$(haproxy_cmd "show servers state alpha")
! grep -q " canary-" <<<"$out" && grep -q " primary-" <<<"$out"
rc=$?
check "HAProxy serves alpha from its primary alone ($(grep -c canary- <<<"$out") canary rows)" $rc
out=$(python3 -c 'import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' "http://127.0.0.1:$bind_a/" 2>&1)
[ "$out" = a1 ]
check "alpha's primary serves a1 ($out)" $?

stop_kanaria
