#!/usr/bin/env bash
# A commit never takes another app's traffic, with real HAProxy: an app of a second repository
# declaring the frontend.bind of a live app fails, naming the owner, and every request still
# reaches the owner; one of the owner's repository is INVALID_APP, located at its bind; an app whose frontend.bind another process listens on (with SO_REUSEPORT)
# fails naming the address, never SUCCESS; a platform whose admin socket path a live process
# listens on refuses to start its HAProxy and says so, and the listener keeps its socket.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
rpid=
spid=
trap cleanup EXIT

# get PORT: the body of one request through HAProxy, or "failed"
get() {
    python3 -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())
except Exception:
    print("failed")' "http://127.0.0.1:$1/"
}

app() { # DIR NAME PLATFORM
    mkdir -p "$1/$2"
    cat >"$1/$2/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $2}
spec:
  platform: $3
  manifests: [service.yaml]
YAML
}
other_git() {
    command git -C "$tmp/other" -c user.name=dev -c user.email=dev@example.com \
        -c commit.gpgsign=false "$@"
}
last() { # APP: status and reason of its newest deployment
    sql "select status || ' ' || coalesce(reason, '') from deployments where app = '$1' order by id desc limit 1"
}

shared=$(free_port)
held=$(free_port)
api=$(free_port)
ports=$((30000 + RANDOM % 20000))
held_sock="$tmp/held.sock"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$(free_port)"}
    ports: {min: $ports, max: $((ports + 40))}
  - name: sockplat
    type: local
    haproxy: {socket: "$held_sock", metricsBind: "127.0.0.1:$(free_port)"}
    ports: {min: $((ports + 41)), max: $((ports + 60))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
  - {name: other, url: "file://$tmp/other", branch: main, pollInterval: 1s}
YAML

# A process that shares its port (SO_REUSEPORT), and one listening on the admin socket path.
python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
time.sleep(600)' "$held" &
rpid=$!
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
time.sleep(600)' "$held_sock" &
spid=$!

mkdir -p "$tmp/upstream" "$tmp/other"
git init -q -b main
app "$tmp/upstream" good local
test_service "$tmp/upstream/good" good good "$shared"
git add -A && git commit -qm "good"
other_git init -q -b main
other_git commit -q --allow-empty -m "empty"

start
wait_for "good deployed" "select status from deployments where app = 'good'" SUCCESS
rc=$?
check "good deploys ($(last good))" $rc
[ "$(get "$shared")" = good ]
check "good answers on its frontend" $?
# the managed HAProxy outlives kanaria: it holds none of kanaria's sockets (curl's, the API's)
hap=$(cat "$tmp/data/local/local/haproxy.pid" 2>/dev/null)
[ -n "$hap" ] && ! shares_sockets "$hap" "$pid"
check "the managed HAProxy holds none of kanaria's sockets" $?

# 1. another repository's app on the same frontend.bind: refused, naming the owner
app "$tmp/other" evil local
test_service "$tmp/other/evil" evil evil "$shared"
other_git add -A && other_git commit -qm "evil"
wait_for "evil failed" "select status from deployments where app = 'evil'" FAILURE
rc=$?
check "an app on a bind another app serves fails ($(last evil))" $rc
grep -q "frontend.bind 127.0.0.1:$shared is already used by app 'good'" <<<"$(last evil)"
check "its reason names the bind and the app that owns it" $?
answers=$(python3 -c 'import collections, sys, urllib.request
seen = collections.Counter()
for _ in range(200):
    try:
        seen[urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip()] += 1
    except Exception:
        seen["failed"] += 1
print(" ".join("%s=%d" % kv for kv in sorted(seen.items())))' "http://127.0.0.1:$shared/")
[ "$answers" = "good=200" ]
check "200 requests to good all answered by good ($answers)" $?
grep -q '"evil"' "$tmp/data/local/local/apps.json"
[ $? -ne 0 ]
check "evil never reached the platform's apps" $?
! grep -q "fe_evil" "$tmp/data/local/local/haproxy.cfg"
check "evil has no frontend in HAProxy" $?

# 1b. the same in the owner's repository: the app is invalid, located at its bind
app "$tmp/upstream" copycat local
test_service "$tmp/upstream/copycat" copycat copycat "$shared"
git add -A && git commit -qm "copycat"
wait_for "copycat invalid" "select count(*) from events where type = 'INVALID_APP' and app = 'copycat'" 1
check "an app of the same repository on good's bind is INVALID_APP" $?
msg=$(sql "select message from events where type = 'INVALID_APP' and app = 'copycat'")
[ "$msg" = "copycat/service.yaml:9:20: frontend.bind 127.0.0.1:$shared is already used by app 'good' (good/app.kanaria.yaml) on platform 'local'" ]
check "located at its frontend.bind, naming the owner ($msg)" $?
[ "$(sql "select count(*) from deployments where app = 'copycat'")" = 0 ]
check "copycat is not deployed" $?
[ "$(get "$shared")" = good ]
check "good still answers on its bind" $?

# 2. a frontend.bind another process listens on, sharing it with SO_REUSEPORT
app "$tmp/upstream" squatted local
test_service "$tmp/upstream/squatted" squatted v1 "$held"
git add -A && git commit -qm "squatted"
wait_for "squatted failed" "select status from deployments where app = 'squatted'" FAILURE
rc=$?
check "an app on a port another process holds fails, not SUCCESS ($(last squatted))" $rc
grep -q "127.0.0.1:$held is in use by another process" <<<"$(last squatted)"
check "its reason names the address" $?
[ "$(get "$shared")" = good ]
check "good still answers" $?

# 3. an admin socket path a live process listens on: HAProxy is not started over it
app "$tmp/upstream" sockapp sockplat
test_service "$tmp/upstream/sockapp" sockapp v1 "$(free_port)"
git add -A && git commit -qm "sockapp"
wait_for "sockapp failed" "select status from deployments where app = 'sockapp'" FAILURE
rc=$?
check "an app whose platform's admin socket is held fails, not SUCCESS ($(last sockapp))" $rc
grep -q "haproxy stats socket $held_sock is in use by another process" <<<"$(last sockapp)"
check "its reason names the socket path" $?
[ -S "$held_sock" ] && [ ! -e "$tmp/data/local/sockplat/haproxy.pid" ]
check "the listener keeps its socket and no HAProxy started" $?
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])' "$held_sock"
check "the listener still answers on it" $?

stop_kanaria
