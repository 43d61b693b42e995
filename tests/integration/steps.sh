#!/usr/bin/env bash
# CANARY_STEPS on the local platform with real HAProxy and Prometheus: the canary's share of the
# HAProxy weights goes 10%, 20%, 30% one step per interval, `kanaria status` shows the step, and
# a check that fails at step 3 (a gauge Prometheus scrapes from this test, 1 while the canary takes
# 30% or more) fails the stage there: the deployment rolls back, step 4 (50%) never comes, and
# all traffic is back on the primary. Then a pause until approved after step 1: an approver not
# in its list is refused, alice's approval moves v3 on to step 2 and promotion, and her
# rejection of v4 at the same pause rolls it back.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
ext_pid=
rpid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
prom=$(free_port)
gauge=$(free_port)
ports=$((30000 + RANDOM % 20000))
sock="$tmp/data/local/local/haproxy.sock"
export KANARIA_ADDR="http://127.0.0.1:$api"
unset KANARIA_TOKEN KANARIA_CACERT

# the gauge: 1 while the canary takes 30% or more of backend hello's weights in HAProxy (say, a
# dependency the canary overloads), else 0
python3 - "$gauge" "$sock" <<'PY' &
import http.server, socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
def share():
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(path)
        s.sendall(b"show servers state hello\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
    except Exception:
        return -1
    total = canary = 0
    for line in data.decode().splitlines()[2:]:
        f = line.split()
        if len(f) > 7 and f[7].isdigit():
            total += int(f[7])
            canary += int(f[7]) if f[3].startswith("canary-") else 0
    return round(100.0 * canary / total) if total else -1
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/share":
            body = ("%d\n" % share()).encode()
        else:
            body = ("kanaria_test_bad %d\n" % (1 if share() >= 30 else 0)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
ext_pid=$!
start_prometheus gauge "$gauge"

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
  - {name: alice, role: approver, tokenSha256: $(hash tok-alice)}
  - {name: bob, role: approver, tokenSha256: $(hash tok-bob)}
YAML
mkdir -p "$tmp/upstream/hello"
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: CANARY_STEPS
      with:
        steps: [10, 20, 30, 50]
        interval: 3s
        analysis:
          metrics:
            - {name: bad, provider: prom, query: "max(max_over_time(kanaria_test_bad[{{window}}]))", interval: 3s, expected: {max: 0.5}}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
# the canary's share of the weights, written to $tmp/shares when it changes
(
    last=
    while true; do
        now=$(curl -s --max-time 2 "http://127.0.0.1:$gauge/share")
        if [ -n "$now" ] && [ "$now" != "$last" ]; then
            echo "$now" >>"$tmp/shares"
            last=$now
        fi
        sleep 0.1
    done
) &
rpid=$!
test_service "$tmp/upstream/hello" hello v1 "$bind" 2
git init -q -b main
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "v1 deploys ($(sql "select reason from deployments where id = 1"))" $rc


ok=1
for _ in $(seq 1 100); do
    [ -s "$tmp/shares" ] && { ok=0; break; }
    sleep 0.2
done
check "the weights are being watched" $ok
test_service "$tmp/upstream/hello" hello v2 "$bind" 2
git commit -qam "hello v2"
wait_for "v2 at step 2" "select value from stage_meta where deployment = 2 and idx = 1 and key = 'step'" 2 60
check "v2 reaches step 2" $?
KANARIA_TOKEN=tok-alice "$bin" status hello >"$tmp/st" 2>&1
grep -Eq '^running stage: *CANARY_STEPS: step (2 of 4: canary 20|3 of 4: canary 30)%$' "$tmp/st"
st=$?; check "status shows the step ($(cat "$tmp/st"))" "$st"
curl -s -H "Authorization: Bearer tok-alice" "$KANARIA_ADDR/api/v1/deployments/2" |
    python3 -c 'import json,sys
d = json.load(sys.stdin)
st = [s for s in d["stages"] if s["index"] == 1][0]
p = [p for p in d["pipeline"] if p["index"] == 1][0]
assert st["step"] in (2, 3), st
assert p["steps"] == [10, 20, 30, 50] and p["interval_ms"] == 3000, p'
check "the API shows the step and the steps" $?

wait_for "v2 rolled back" "select status from deployments where id = 2" "FAILURE" 60
check "a check failing at step 3 rolls back" $?
reason=$(sql "select reason from deployments where id = 2")
grep -q "^stage CANARY_STEPS failed: step 3 (30%): analysis 'bad' failed: canary 1 > max 0.5 " <<<"$reason"
check "the reason names the step and the check ($reason)" $?
sleep 0.5
kill "$rpid"; wait "$rpid" 2>/dev/null; rpid=
seen=$(grep -v '^-1$' "$tmp/shares" | uniq | tr '\n' ' ')
[ "$seen" = "0 10 20 30 0 " ]
check "HAProxy's weights went 10%, 20%, 30% to the canary, then back to the primary, never 50% ($seen)" $?
out=$(count 10)
[ "$out" = "v1 10" ]
check "after the rollback every request goes to v1 ($out)" $?

# a pause until alice approves, after step 1 (10%)
python3 - "$tmp/upstream/hello/app.kanaria.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("steps: [10, 20, 30, 50]", "steps: [10, 20]\n        pause: [{step: 1, untilApproved: true, approvers: [alice]}]")
open(p, "w").write(s)
PY
test_service "$tmp/upstream/hello" hello v3 "$bind" 2
git commit -qam "hello v3, paused for approval"
wait_for "v3 paused" "select value from stage_meta where deployment = 3 and idx = 1 and key = 'awaiting_approval'" 1 60
check "v3 holds after step 1 until approved" $?
KANARIA_TOKEN=tok-alice "$bin" status hello >"$tmp/st" 2>&1
grep -q 'CANARY_STEPS: step 1 of 2: canary 10%, paused until approved' "$tmp/st"
st=$?; check "status shows the pause ($(grep CANARY_STEPS "$tmp/st"))" "$st"
sleep 4
[ "$(sql "select value from stage_meta where deployment = 3 and idx = 1 and key = 'step'")" = 1 ]
check "it stays at step 1 past the step's interval" $?
out=$(KANARIA_TOKEN=tok-bob "$bin" approve hello 2>&1)
[ $? -eq 1 ] && grep -q "not an approver of this stage" <<<"$out"
check "bob, not in the pause's approvers, is refused ($out)" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" approve hello 2>&1)
check "alice approves ($out)" $?
wait_for "v3 promoted" "select status from deployments where id = 3" "SUCCESS" 60
check "her approval moves v3 on to step 2 and promotion" $?
sql "select message from events where deployment = 3 and type = 'APPROVED'" |
    grep -q "approved stage 1 CANARY_STEPS (its pause after step 1)"
check "the approval is in the audit log with the step" $?
test_service "$tmp/upstream/hello" hello v4 "$bind" 2
git commit -qam "hello v4"
wait_for "v4 paused" "select value from stage_meta where deployment = 4 and idx = 1 and key = 'awaiting_approval'" 1 60
check "v4 holds after step 1" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" reject hello --reason "not yet" 2>&1)
check "alice rejects ($out)" $?
wait_for "v4 rolled back" "select status from deployments where id = 4" "FAILURE" 60
check "her rejection rolls v4 back" $?
reason=$(sql "select reason from deployments where id = 4")
grep -q "step 1 (10%): rejected by alice" <<<"$reason"
check "the reason names the step and who rejected ($reason)" $?

stop_kanaria
