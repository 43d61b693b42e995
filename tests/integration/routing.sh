#!/usr/bin/env bash
# Header and cookie routing on the local platform: a canary at 20% with TRAFFIC_ROUTING `match`
# (a header and a cookie) behind the managed HAProxy. Requests with the header or the cookie all
# reach the canary, the others follow the weights; the routes live in HAProxy's route map (no
# reload); a rejection rolls back, after which the header no longer pins anything to the canary
# and no route is left; an entry added to that map by hand is then reported as drift.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

haproxy_cmd() { # SOCKET COMMAND
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
print(out.decode(), end="")
PY
}

# count_with N [HEADER...]: N requests through HAProxy with these headers, "BODY COUNT" lines
count_with() {
    python3 - "http://127.0.0.1:$bind/" "$@" <<'PY'
import collections, sys, urllib.request
url, n, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seen = collections.Counter()
for _ in range(n):
    req = urllib.request.Request(url)
    for h in headers:
        k, v = h.split(":", 1)
        req.add_header(k.strip(), v.strip())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            seen[r.read().decode().strip()] += 1
    except Exception:
        seen["failed"] += 1
for k, v in sorted(seen.items()):
    print(k, v)
PY
}

bind=$(free_port)
ports=$((30000 + RANDOM % 20000))
sock="$tmp/data/local/local/haproxy.sock"
mkdir -p "$tmp/upstream/hello"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$(free_port)
driftInterval: 1s
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$(free_port)"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 2}
    - name: TRAFFIC_ROUTING
      with:
        canary: 20
        match:
          - header: {name: X-Canary, exact: always}
          - cookie: {name: tester, regex: "^(alice|bob)$"}
    - name: WAIT_APPROVAL
      with: {approvers: [alice]}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {all: primary}
    - name: CANARY_CLEAN
YAML
git init -q -b main
test_service "$tmp/upstream/hello" hello v1 "$bind" 2
git add -A && git commit -qm "hello v1"

start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
check "v1 deploys (quick sync)" $?

# 1. v2 as a canary at 20% with routes
test_service "$tmp/upstream/hello" hello v2 "$bind" 2
git commit -qam "hello v2"
wait_for "canary waiting" "select s.name from stages s where s.deployment = 2 and s.status = 'RUNNING'" \
    "WAIT_APPROVAL"
check "v2 runs as a canary with its routes and waits for approval" $?
out=$(count_with 200 "X-Canary: always")
[ "$out" = "v2 200" ]
rc=$?
check "every request with X-Canary: always reaches the canary ($(tr '\n' ' ' <<<"$out"))" $rc
out=$(count_with 100 "x-canary: always" "Cookie: a=1; tester=bob")
[ "$out" = "v2 100" ]
rc=$?
check "the header in another case, and a matching cookie among others, reach the canary ($(tr '\n' ' ' <<<"$out"))" $rc
out=$(count_with 200 "X-Canary: sometimes" "Cookie: tester=carol")
v2=$(awk '$1 == "v2" {print $2}' <<<"$out")
failed=$(awk '$1 == "failed" {print $2}' <<<"$out")
# 20% of 200: sd = sqrt(200 * 0.2 * 0.8) ≈ 5.7; allow five sd either way
[ -z "$failed" ] && [ "${v2:-0}" -ge 12 ] && [ "${v2:-0}" -le 68 ]
rc=$?
check "requests that match no route follow the weights, about 20% to the canary ($(tr '\n' ' ' <<<"$out"))" $rc
[ "$(grep -c 'haproxy version is' "$tmp/data/local/local/haproxy.log" 2>/dev/null)" -le 2 ]
check "the routes took no HAProxy reload" $?
haproxy_cmd "$sock" "show map $tmp/data/local/local/routes-hello.map" >"$tmp/map"
[ "$(grep -c '^0x' "$tmp/map")" = 2 ] && grep -q 'x.x2dcanary' "$tmp/map" && grep -q 'tester=' "$tmp/map"
rc=$?
check "HAProxy's route map holds the two routes ($(tr '\n' ' ' <<<"$(cat "$tmp/map")"))" $rc

# 2. a rejection rolls back: no route stays
sql "insert into approvals (deployment, stage, who, decision, at) values (2, 2, 'alice', 'REJECT', 0)"
wait_for "v2 rolled back" "select status from deployments where id = 2" "FAILURE" 30
check "a rejection rolls the canary back" $?
out=$(count_with 100 "X-Canary: always")
[ "$out" = "v1 100" ]
rc=$?
check "after the rollback the header no longer pins the canary ($(tr '\n' ' ' <<<"$out"))" $rc
haproxy_cmd "$sock" "show map $tmp/data/local/local/routes-hello.map" >"$tmp/map"
[ "$(grep -c '^0x' "$tmp/map")" = 0 ] && [ ! -s "$tmp/data/local/local/routes-hello.map" ]
rc=$?
check "no route is left in HAProxy or in its map file ($(cat "$tmp/map"))" $rc
! grep -q '"routes"' "$tmp/data/local/local/apps.json"
check "no route is left in the platform's record" $?

# 3. a route added by hand (kanaria set none now) is drift
sleep 3
[ "$(sql "select count(*) from events where type = 'DRIFT_DETECTED'")" = 0 ]
check "the app does not drift after the rollback" $?
haproxy_cmd "$sock" "add map $tmp/data/local/local/routes-hello.map (?:^|\\\\n)x-sneaky: 1" >/dev/null
wait_for "stray route" "select drift like '%stray route%' from apps where name = 'hello'" 1 15
rc=$?
check "a route kanaria did not set is reported as drift ($(sql "select drift from apps"))" $rc
haproxy_cmd "$sock" "del map $tmp/data/local/local/routes-hello.map (?:^|\\\\n)x-sneaky:" >/dev/null

stop_kanaria
