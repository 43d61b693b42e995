#!/usr/bin/env bash
# Notifications, the event stream and /metrics against a real `kanaria serve` (local platform,
# real HAProxy): a webhook receiver that fails the first delivery gets every event, signed with
# the shared secret, the failed one again after the backoff; /metrics counts the deployment and
# has the DORA metrics; GET /api/v1/events streams the events of a new commit, and after
# Last-Event-ID the ones that were missed; SIGTERM ends open streams.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
rpid=
spid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
hook=$(free_port)
ports=$((30000 + RANDOM % 20000))
printf '%s\n' "notify-secret-7c2a" >"$tmp/secret"

# The receiver: 500 to the first request, 200 after; one JSON line per request in hook.log with
# whether its X-Kanaria-Signature-256 is right.
python3 - "$hook" "$tmp/secret" "$tmp/hook.log" <<'PY' &
import hashlib, hmac, http.server, json, sys
port, secret, log = int(sys.argv[1]), open(sys.argv[2]).read().strip().encode(), sys.argv[3]
seen = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        seen[0] += 1
        status = 500 if seen[0] == 1 else 200
        ev = json.loads(body)
        with open(log, "a") as f:
            f.write(json.dumps({"n": seen[0], "status": status, "id": ev["id"], "type": ev["type"],
                                "app": ev["app"], "header": self.headers.get("X-Kanaria-Event"),
                                "valid": hmac.compare_digest(want, self.headers.get(
                                    "X-Kanaria-Signature-256", ""))}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
rpid=$!
for _ in $(seq 1 50); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$hook" 2>/dev/null && break
    sleep 0.1
done

mkdir -p "$tmp/upstream/hello"
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
notifications:
  - name: hook
    url: http://127.0.0.1:$hook/kanaria
    secretFile: $tmp/secret
YAML
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 1; } # version
# hooked JQ-LIKE-PYTHON-EXPR: evaluate over the receiver's lines (list `r`), print the result
hooked() {
    python3 -c 'import json,sys
r = [json.loads(l) for l in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
print(eval(sys.argv[2]))' "$tmp/hook.log" "$1"
}
wait_hook() { # DESCRIPTION EXPR [SECONDS]
    for _ in $(seq 1 $((${3:-30} * 5))); do
        [ "$(hooked "$2")" = True ] && return 0
        sleep 0.2
    done
    echo "  waited for $1; the receiver got:"
    cat "$tmp/hook.log" 2>/dev/null
    return 1
}

git init -q -b main
service v1
git add -A && git commit -qm "hello v1"

# 1. the first commit deploys; the receiver gets its events, signed, the first one twice
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "the first commit deploys $(sql "select reason from deployments")" $rc
wait_hook "SUCCEEDED delivered" 'any(x["type"] == "SUCCEEDED" and x["status"] == 200 for x in r)'
check "the receiver gets SUCCEEDED" $?
[ "$(hooked 'any(x["type"] == "PLANNED" and x["app"] == "hello" for x in r)')" = True ]
check "the receiver gets PLANNED" $?
[ "$(hooked 'len(r) > 0 and all(x["valid"] for x in r)')" = True ]
check "every delivery carries a valid X-Kanaria-Signature-256" $?
[ "$(hooked 'r[0]["status"] == 500 and any(x["id"] == r[0]["id"] and x["status"] == 200 for x in r[1:])')" = True ]
check "the delivery answered 500 is sent again and then accepted" $?
[ "$(hooked 'all(x["header"] == x["type"] for x in r)')" = True ]
check "X-Kanaria-Event names the event" $?
[ "$(hooked '[x["id"] for x in r if x["status"] == 200] == sorted(set(x["id"] for x in r if x["status"] == 200))')" = True ]
check "each event is accepted once, in order" $?
grep -q 'notify name=hook.*answered HTTP 500; attempt 2 in 1000 ms' "$tmp/log"
check "the retry is logged with its backoff" $?

# 2. /metrics
out=$(curl -sf "http://127.0.0.1:$api/metrics")
check "GET /metrics answers" $?
grep -qx 'kanaria_deployments_total{app="hello",result="SUCCESS"} 1' <<<"$out"
check "kanaria_deployments_total counts the success" $?
for m in kanaria_dora_deployment_frequency kanaria_dora_lead_time_seconds \
    kanaria_dora_change_failure_rate; do
    grep -q "^$m{app=\"hello\"} [0-9.e+-]*\$" <<<"$out"
    check "$m has a value for hello" $?
done
grep -q '^# TYPE kanaria_dora_time_to_restore_seconds gauge$' <<<"$out"
check "kanaria_dora_time_to_restore_seconds is declared" $?
# the live gauges are drift's last reading of the platform (every driftInterval)
for _ in $(seq 1 75); do
    grep -qx 'kanaria_canary_weight_percent{app="hello"} 0' <<<"$out" && break
    sleep 0.2
    out=$(curl -sf "http://127.0.0.1:$api/metrics")
done
grep -qx 'kanaria_canary_weight_percent{app="hello"} 0' <<<"$out"
check "the canary weight of hello is 0" $?
curl -s -D - -o /dev/null "http://127.0.0.1:$api/metrics" | grep -qi '^content-type: text/plain; version=0.0.4'
check "/metrics is the Prometheus text format 0.0.4" $?

# 3. the event stream: a new commit shows within seconds
curl -sN "http://127.0.0.1:$api/api/v1/events" >"$tmp/sse.out" 2>/dev/null &
spid=$!
sleep 1
last=$(sql "select max(id) from events")
service v2
git commit -qam "hello v2"
got=1
for _ in $(seq 1 50); do
    grep -q '^data: {"id":[0-9]*,"type":"PLANNED"' "$tmp/sse.out" && { got=0; break; }
    sleep 0.2
done
check "GET /api/v1/events streams PLANNED within 10 s of the commit" $got
wait_for "v2 deployed" "select status from deployments where id = 2" "SUCCESS"
check "v2 deploys" $?
sleep 1
n=$(grep -c '^id: ' "$tmp/sse.out")
ids=$(grep '^id: ' "$tmp/sse.out" | cut -d' ' -f2 | tr '\n' ' ')
want=$(sql "select id from events where id > $last" | tr '\n' ' ')
[ "$ids" = "$want" ]
check "the stream has each new event once, in order ($n: $ids)" $?
out=$(curl -sN --max-time 2 -H "Last-Event-ID: $last" "http://127.0.0.1:$api/api/v1/events")
[ "$(grep '^id: ' <<<"$out" | cut -d' ' -f2 | tr '\n' ' ')" = "$want" ]
check "Last-Event-ID sends the events after it first" $?

# 4. kanaria status --watch redraws every second
out=$(KANARIA_ADDR="http://127.0.0.1:$api" timeout 2.5 "$bin" status --watch)
[ "$(grep -c '^hello ' <<<"$out")" -ge 2 ] && [ "$(grep -c '^every 1s: kanaria status' <<<"$out")" -ge 2 ]
check "status --watch redraws the table every second" $?

# 5. SIGTERM ends the open stream and kanaria exits 0
kill -TERM "$pid"
wait "$pid"
check "kanaria exits 0 on SIGTERM with a stream open" $?
pid=
wait "$spid"
spid=
check "the stream ends when kanaria stops" 0
summary
