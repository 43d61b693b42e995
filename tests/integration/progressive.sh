#!/usr/bin/env bash
# A Flagger-style progressive canary on the local platform with real HAProxy and Prometheus:
# CANARY_ROLLOUT, TRAFFIC_ROUTING with canary 0 and a header route (testers pinned by X-Canary),
# CANARY_STEPS 10%, 20%, 30% with a probe of the canary at each step, the promotion, and a
# background analysis (spec.analysis, the canary's 5xx in HAProxy) from the TRAFFIC_ROUTING until
# the promotion. v2 goes through: the testers' requests all reach the canary during the steps
# while the others follow each step's weight (HAProxy's weights watched from its socket), and no
# route is left after the promotion. v3 answers 500s: the background analysis fails mid-steps,
# the deployment rolls back with "background analysis failed" and leaves no route.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
load_pid=
ext_pid=
rpid=
trap cleanup EXIT

haproxy_cmd() { # COMMAND: its answer on the managed HAProxy's socket
    python3 - "$sock" "$1" <<'PY'
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(sys.argv[1])
    s.sendall((sys.argv[2] + "\n").encode())
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    print(out.decode(), end="")
except Exception:
    pass
PY
}

# count_with N [HEADER...]: N requests through HAProxy with these headers, "BODY COUNT" lines
count_with() {
    python3 - "http://127.0.0.1:$bind/" "$@" <<'PY'
import collections, sys, urllib.request, urllib.error
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
    except urllib.error.HTTPError as e:
        seen["error%d" % e.code] += 1
    except Exception:
        seen["failed"] += 1
for k, v in sorted(seen.items()):
    print(k, v)
PY
}

# wait_step STEP: wait (60 s at most, by the clock) until CANARY_STEPS of deployment 2 is at STEP
# or later, or has ended; prints what it saw: "RUNNING N" while it runs
wait_step() {
    local got= end=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$end" ]; do
        got=$(sql "select s.status || ' ' || m.value from stages s join stage_meta m on m.deployment = s.deployment and m.idx = s.idx and m.key = 'step' where s.deployment = 2 and s.idx = 2")
        case "$got" in
        "RUNNING "*) [ "${got#RUNNING }" -ge "$1" ] && break ;;
        ?*) break ;;
        esac
        sleep 0.2
    done
    echo "$got"
}

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
prom=$(free_port)
ports=$((30000 + RANDOM % 20000))
sock="$tmp/data/local/local/haproxy.sock"
map="$tmp/data/local/local/routes-hello.map"
export KANARIA_ADDR="http://127.0.0.1:$api"
unset KANARIA_TOKEN KANARIA_CACERT

start_prometheus haproxy "$metrics"

cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
metricsProviders:
  - {name: prom, type: prometheus, address: "http://127.0.0.1:$prom", timeout: 2s}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
users:
  - {name: alice, role: viewer, tokenSha256: $(hash tok-alice)}
YAML
# the canary's 500s over the window, in its weighted backend and in its route backend
# (hello:canary) alike: the pinned testers' requests count
errors='sum(increase(haproxy_server_http_responses_total{proxy=~"{{backend}}(:canary)?",server=~"{{server}}.*",code="5xx"}[{{window}}])) or vector(0)'
mkdir -p "$tmp/upstream/hello"
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  analysis:
    startingStage: pinned
    metrics:
      - {name: canary-errors, provider: prom, query: '$errors', interval: 2s, expected: {max: 0.5}}
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: TRAFFIC_ROUTING
      id: pinned
      with:
        canary: 0
        match:
          - header: {name: X-Canary, exact: always}
    - name: CANARY_STEPS
      with:
        steps: [10, 20, 30]
        interval: 5s
        analysis:
          http:
            - {name: canary-up, variant: canary, url: "{{variant_url}}/healthz", interval: 1s, timeout: 1s}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {all: primary}
    - name: CANARY_CLEAN
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 2 ", ERROR_RATE: \"$2\""; } # version error-rate
# the canary's share of backend hello's weights, appended to $tmp/shares when it changes
(
    last=
    while true; do
        now=$(haproxy_cmd "show servers state hello" | awk 'NR > 2 && $8 ~ /^[0-9]+$/ {
                t += $8; if ($4 ~ /^canary-/) c += $8 } END { if (t) printf "%d\n", 100 * c / t + 0.5 }')
        if [ -n "$now" ] && [ "$now" != "$last" ]; then
            echo "$now" >>"$tmp/shares"
            last=$now
        fi
        sleep 0.1
    done
) &
rpid=$!
# steady load through HAProxy, one line per answer: the others in $tmp/load, the testers (with
# the header) in $tmp/pinned
start_load "http://127.0.0.1:$bind/" "$tmp/load"
python3 - "http://127.0.0.1:$bind/" "$tmp/pinned" <<'PY' &
import sys, time, urllib.request, urllib.error
url, out = sys.argv[1], sys.argv[2]
while True:
    try:
        req = urllib.request.Request(url, headers={"X-Canary": "always"})
        with urllib.request.urlopen(req, timeout=2) as r:
            body = r.read().decode().strip()
    except urllib.error.HTTPError as e:
        body = "error %d" % e.code
    except Exception:
        body = "failed"
    with open(out, "a") as f:
        f.write(body + "\n")
    time.sleep(0.05)
PY
ext_pid=$!

git init -q -b main
service v1 0
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "v1 deploys ($(sql "select reason from deployments where id = 1"))" $rc

# 1. v2 goes through the steps with its testers pinned
service v2 0
git commit -qam "hello v2"
at=$(wait_step 2)
[ "$at" = "RUNNING 2" ]
rc=$?
check "v2 reaches step 2 of CANARY_STEPS ($at)" $rc
KANARIA_TOKEN=tok-alice "$bin" status hello >"$tmp/st" 2>&1
grep -Eq '^background: ' "$tmp/st" && grep -Eq 'CANARY_STEPS: step [23] of 3: canary [23]0%' "$tmp/st"
rc=$?
check "status shows the step and the background analysis ($(tr '\n' '|' <<<"$(cat "$tmp/st")"))" $rc
haproxy_cmd "show map $map" >"$tmp/map"
[ "$(grep -c '^0x' "$tmp/map")" = 1 ] && grep -q 'x.x2dcanary' "$tmp/map"
rc=$?
check "HAProxy's route map holds the testers' route during the steps ($(tr '\n' ' ' <<<"$(cat "$tmp/map")"))" $rc
# the answers from step 2 on until step 3 starts, while CANARY_STEPS runs
l1=$(wc -l <"$tmp/load")
p1=$(wc -l <"$tmp/pinned")
at=$(wait_step 3)
[ "$at" = "RUNNING 3" ]
rc=$?
check "v2 reaches step 3 of CANARY_STEPS while it runs ($at)" $rc
l2=$(wc -l <"$tmp/load")
p2=$(wc -l <"$tmp/pinned")
out=$(sed -n "$((p1 + 1)),${p2}p" "$tmp/pinned" | sort | uniq -c | awk '{print $2, $1}')
[ "$(wc -l <<<"$out")" = 1 ] && [ "$(cut -d' ' -f1 <<<"$out")" = v2 ]
rc=$?
check "at step 2 every request with X-Canary: always reached the canary ($(tr '\n' ' ' <<<"$out"))" $rc
out=$(sed -n "$((l1 + 1)),${l2}p" "$tmp/load" | sort | uniq -c | awk '{print $2, $1}')
v2=$(awk '$1 == "v2" {print $2}' <<<"$out")
v1=$(awk '$1 == "v1" {print $2}' <<<"$out")
# about 20% to the canary: at least one, at most half (the steady load sends some 50 a second)
[ "$(wc -l <<<"$out")" = 2 ] && [ "${v2:-0}" -ge 1 ] && [ "${v1:-0}" -ge "${v2:-0}" ]
rc=$?
check "the others followed the step's weight, about 20% to the canary ($(tr '\n' ' ' <<<"$out"))" $rc

wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 60
rc=$?
check "v2 is promoted ($(sql "select reason from deployments where id = 2"))" $rc
n=$(sql "select count(*) from stages where deployment = 2 and name = 'CANARY_STEPS' and status = 'SUCCESS'")
bg=$(sql "select status from stages where deployment = 2 and idx = 7")
[ "$n" = 1 ] && [ "$bg" = SUCCESS ]
rc=$?
check "CANARY_STEPS and the background analysis succeeded ($n, $bg)" $rc
bgn=$(sql "select count(*) from analysis_records where deployment = 2 and stage = 7 and check_name = 'canary-errors' and verdict = 'PASS'")
stn=$(sql "select count(*) from analysis_records where deployment = 2 and stage = 2 and check_name = 'canary-up' and verdict = 'PASS'")
[ "$bgn" -ge 3 ] && [ "$stn" -ge 3 ]
rc=$?
check "the background analysis and the steps' probe evaluated and passed ($bgn, $stn)" $rc
sleep 0.5
seen=$(grep -v '^$' "$tmp/shares" | uniq | tr '\n' ' ')
[ "$seen" = "0 10 20 30 0 " ]
rc=$?
check "HAProxy's weights went 0%, 10%, 20%, 30% to the canary, then all to the primary ($seen)" $rc
haproxy_cmd "show map $map" >"$tmp/map"
[ "$(grep -c '^0x' "$tmp/map")" = 0 ] && [ ! -s "$map" ]
rc=$?
check "no route is left after the promotion ($(cat "$tmp/map"))" $rc
out=$(count_with 20 "X-Canary: always")
[ "$out" = "v2 20" ]
rc=$?
check "the header now reaches the promoted primary ($(tr '\n' ' ' <<<"$out"))" $rc

# 2. v3 answers half of its requests with 500: the background analysis fails mid-steps
: >"$tmp/shares"
service v3 0.5
git commit -qam "hello v3"
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 60
rc=$?
reason=$(sql "select reason from deployments where id = 3")
check "v3 rolls back" $rc
grep -q "background analysis failed: analysis 'canary-errors' failed: canary " <<<"$reason"
rc=$?
check "the reason is the background analysis ($reason)" $rc
st=$(sql "select status from stages where deployment = 3 and name = 'CANARY_STEPS'")
step=$(sql "select value from stage_meta where deployment = 3 and idx = 2 and key = 'step'")
bg=$(sql "select status from stages where deployment = 3 and idx = 7")
[ "$st" = CANCELLED ] && [ -n "$step" ] && [ "$step" -le 3 ] && [ "$bg" = FAILURE ] &&
    [ "$(sql "select count(*) from stages where deployment = 3 and name = 'PRIMARY_ROLLOUT' and status != 'PENDING'")" = 0 ]
rc=$?
check "it failed while CANARY_STEPS ran (at step $step, stage $st, background $bg), before any promotion" $rc
haproxy_cmd "show map $map" >"$tmp/map"
[ "$(grep -c '^0x' "$tmp/map")" = 0 ] && [ ! -s "$map" ]
rc=$?
check "the rollback leaves no route ($(cat "$tmp/map"))" $rc
out=$(count_with 20 "X-Canary: always")
[ "$out" = "v2 20" ]
rc=$?
check "after the rollback the header reaches v2, the primary ($(tr '\n' ' ' <<<"$out"))" $rc
out=$(count_with 20)
[ "$out" = "v2 20" ]
rc=$?
check "and so does every other request ($(tr '\n' ' ' <<<"$out"))" $rc

stop_kanaria
