#!/usr/bin/env bash
# Drift and self-heal on the local platform, with real HAProxy: two quick-sync apps; someone sets
# the weights of one by hand through HAProxy's socket → DRIFT_DETECTED, shown on the app, nothing
# deployed; weights back → DRIFT_RESOLVED; one server of four at weight 0 or in maintenance is
# drift too, named. The other has trigger.onOutOfSync: one of its servers put in maintenance by
# hand → drift naming it → a self-heal deployment of its last good commit puts it back in
# service. Then an external HAProxy (haproxy.managed: false) serves an app kanaria deploys, and
# when that HAProxy is gone a stage fails with its words and the rollback retries.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
ext_pid=
trap cleanup EXIT

# haproxy SOCKET COMMAND: one runtime-API command, its reply on stdout
haproxy_cmd() {
    python3 - "$1" "$2" <<'PY'
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

# get PORT: the body of one request through HAProxy, or "failed"
get() {
    python3 -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())
except Exception:
    print("failed")' "http://127.0.0.1:$1/"
}

declare -A bind
bind[steady]=$(free_port)
bind[healer]=$(free_port)
bind[ext]=$(free_port)
metrics=$(free_port)
api=$(free_port)
ports=$((30000 + RANDOM % 20000))
sock="$tmp/data/local/local/haproxy.sock"

app() { # name onOutOfSync
    mkdir -p "$tmp/upstream/$1"
    cat >"$tmp/upstream/$1/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $1}
spec:
  platform: ${3:-local}
  manifests: [service.yaml]
  trigger: {onOutOfSync: $2}
YAML
}
service() { test_service "$tmp/upstream/$1" "$1" "$2" "${bind[$1]}" 4; } # name version: 4 primaries
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
driftInterval: 1s
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
  - name: outside
    type: local
    haproxy: {managed: false, socket: "$tmp/ext.sock"}
    ports: {min: $((ports + 51)), max: $((ports + 99))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
mkdir -p "$tmp/upstream"
git init -q -b main
app steady false
service steady v1
app healer true
service healer v1
git add -A && git commit -qm "steady and healer v1"

start
wait_for "both deployed" "select count(*) from deployments where status = 'SUCCESS'" 2
rc=$?
check "both apps deploy ($(sql "select app, status, reason from deployments" | tr '\n' ' '))" $rc
sleep 3
[ "$(sql "select drift from apps order by name")" = "$(printf '\n')" ]
rc=$?
check "right after deploying, neither app drifts ($(sql "select name, drift from apps" | tr '\n' ' '))" $rc

# 1. weights changed by hand: drift, shown on the app, nothing deployed
declare -A weight # the weight kanaria set on each server of steady
while read -r name w; do
    weight[$name]=$w
done < <(haproxy_cmd "$sock" "show servers state steady" | awk 'NR > 2 && NF > 7 {print $4, $8}')
[ "${#weight[@]}" = 4 ]
check "steady has four servers in HAProxy (${!weight[*]})" $?
for s in primary-1 primary-2 primary-3 primary-4; do
    haproxy_cmd "$sock" "set weight steady/$s 0" >/dev/null
done
wait_for "steady drifts" "select count(*) from events where type = 'DRIFT_DETECTED' and app = 'steady'" 1
check "a weight set by hand in HAProxy is drift" $?
# every server is compared: a check between two of the four commands sees part of it first
for _ in $(seq 1 50); do
    drift=$(sql "select drift from apps where name = 'steady'")
    grep -q "traffic is primary 0%" <<<"$drift" && break
    sleep 0.2
done
grep -q "traffic is primary 0%" <<<"$drift"
check "the app shows how it drifted ($drift)" $?
out=$(KANARIA_ADDR="http://127.0.0.1:$api" "$bin" status steady)
grep -q "^drift: *traffic is primary 0%" <<<"$out"
rc=$?
check "kanaria status shows the drift ($(grep drift <<<"$out"))" $rc
sleep 2
[ "$(sql "select count(*) from deployments where app = 'steady'")" = 1 ]
check "drift without onOutOfSync deploys nothing" $?
for s in primary-1 primary-2 primary-3 primary-4; do
    haproxy_cmd "$sock" "set weight steady/$s ${weight[$s]}" >/dev/null
done
wait_for "steady back" "select count(*) from events where type = 'DRIFT_RESOLVED' and app = 'steady'" 1
check "weights put back resolve the drift" $?

# 1b. one server of four at weight 0, or in maintenance: the shares stay all on the primary,
# the servers show it
haproxy_cmd "$sock" "set weight steady/primary-2 0" >/dev/null
wait_for "steady drifts again" "select count(*) from events where type = 'DRIFT_DETECTED' and app = 'steady'" 2
drift=$(sql "select drift from apps where name = 'steady'")
grep -q "primary-2 weight 0 (expected ${weight[primary-2]})" <<<"$drift"
check "one server of four at weight 0 is drift, named ($drift)" $?
haproxy_cmd "$sock" "set weight steady/primary-2 ${weight[primary-2]}" >/dev/null
haproxy_cmd "$sock" "set server steady/primary-3 state maint" >/dev/null
wait_for "steady drift changes" "select drift from apps where name = 'steady'" \
    "primary-3 is in maintenance (expected ready)"
rc=$?
check "one server of four in maintenance is drift, named ($(sql "select drift from apps where name = 'steady'"))" $rc
haproxy_cmd "$sock" "set server steady/primary-3 state ready" >/dev/null
wait_for "steady back again" "select drift from apps where name = 'steady'" ""
check "the server back in service resolves the drift" $?

# 2. a server put in maintenance by hand: self-heal re-applies the last good commit
[ "$(get "${bind[healer]}")" = v1 ]
check "healer serves v1" $?
haproxy_cmd "$sock" "disable server healer/primary-3" >/dev/null
wait_for "healer drifts" "select count(*) from events where type = 'DRIFT_DETECTED' and app = 'healer' and message like '%primary-3 is in maintenance (expected ready)%'" 1
rc=$?
check "one server of four in maintenance: DRIFT_DETECTED names it ($(sql "select message from events where type = 'DRIFT_DETECTED' and app = 'healer'"))" $rc
wait_for "self-heal" "select trigger, strategy, status from deployments where app = 'healer' order by id desc limit 1" \
    "self-heal|QUICK_SYNC|SUCCESS"
check "drift of an app with onOutOfSync starts a self-heal that succeeds" $?
wait_for "healer in sync" "select drift from apps where name = 'healer'" ""
rc=$?
check "after the self-heal the app is in sync ($(sql "select drift from apps where name = 'healer'"))" $rc
for _ in $(seq 1 25); do
    [ "$(get "${bind[healer]}")" = v1 ] && break
    sleep 0.2
done
[ "$(get "${bind[healer]}")" = v1 ]
check "healer serves v1 again" $?
sleep 2
[ "$(sql "select count(*) from deployments where app = 'healer'")" = 2 ]
check "one self-heal, not one per check" $?

# 3. an external HAProxy (managed: false) that kanaria drives through its socket
cat >"$tmp/ext.cfg" <<CFG
global
    stats socket $tmp/ext.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend ext
    bind 127.0.0.1:${bind[ext]}
    default_backend ext
backend ext
    balance roundrobin
CFG
haproxy -D -f "$tmp/ext.cfg" -p "$tmp/ext.pid" >>"$tmp/log" 2>&1
ext_pid=$(cat "$tmp/ext.pid")
app ext false outside
service ext v1
git add -A && git commit -qm "ext v1"
wait_for "ext deployed" "select status from deployments where app = 'ext'" SUCCESS
rc=$?
check "an app deploys through an external HAProxy ($(sql "select reason from deployments where app = 'ext'"))" $rc
[ "$(get "${bind[ext]}")" = v1 ]
check "the external HAProxy serves it" $?

# 4. that HAProxy gone: the stage fails with its words and the rollback retries
kill -TERM "$ext_pid"
ext_pid=
sleep 1
service ext v2
git commit -qam "ext v2"
wait_for "ext v2 rolling back" "select status from deployments where app = 'ext' order by id desc limit 1" ROLLING_BACK
check "a stage that cannot reach HAProxy fails and rolls back" $?
reason=$(sql "select reason from deployments where app = 'ext' order by id desc limit 1")
grep -q "haproxy is not reachable at $tmp/ext.sock" <<<"$reason"
check "the reason is HAProxy's side of it ($reason)" $?
for _ in $(seq 1 50); do
    grep -q "rollback step .* failed (attempt 2)" "$tmp/log" && break
    sleep 0.2
done
grep -q "rollback step .* failed (attempt 2)" "$tmp/log"
check "the rollback retries its step" $?

stop_kanaria
