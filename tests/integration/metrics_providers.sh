#!/usr/bin/env bash
# ANALYSIS through the datadog and web metrics providers, end to end: a scripted server on
# loopback answers /api/v1/query in Datadog's documented shape (its first answer a 429 with
# X-RateLimit-Reset: 1, which kanaria waits out and asks again) and a JSON document for the web
# provider. A healthy canary passes both checks and is promoted; a canary whose web value is over
# the bound is rolled back with the check named; the keys never appear in kanaria's log.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
spid=
trap cleanup EXIT

bind=$(free_port)
fake=$(free_port)
ports=$((30000 + RANDOM % 20000))
api_key=5f0c8a61e2d94b7c8e3a1d2f4b6c8e0a
app_key=9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3
token=Bearer-3c2b1a09f8e7d6c5
printf '%s\n' "$api_key" >"$tmp/dd-api"
printf '%s\n' "$app_key" >"$tmp/dd-app"
printf 'Bearer %s\n' "$token" >"$tmp/stats-auth"
echo 0.01 >"$tmp/dd-value"
echo 0.01 >"$tmp/web-value"

python3 - "$fake" "$tmp" "$api_key" "$app_key" "Bearer $token" <<'PY' >"$tmp/fake.log" 2>&1 &
import http.server, json, sys, threading, urllib.parse
port, d, api, app, auth = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
state = {"dd": 0}
lock = threading.Lock()
def value(name):
    return float(open(f"{d}/{name}-value").read())
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, status, doc, headers=()):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/api/v1/query":
            if self.headers.get("DD-API-KEY") != api or self.headers.get("DD-APPLICATION-KEY") != app:
                return self.reply(403, {"errors": ["Forbidden"]})
            with lock:
                state["dd"] += 1
                first = state["dd"] == 1
            if first:
                return self.reply(429, {"errors": ["Too many requests"]},
                                  [("X-RateLimit-Limit", "100"), ("X-RateLimit-Period", "10"),
                                   ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "1")])
            frm, to = int(q["from"][0]), int(q["to"][0])
            v = value("dd")
            series = [{"metric": "trace.http.request.errors", "scope": "version:canary",
                       "tag_set": ["version:canary"], "aggr": "sum", "interval": 1,
                       "length": 2, "start": frm * 1000, "end": to * 1000,
                       "pointlist": [[frm * 1000.0, v], [to * 1000.0, v]]}]
            return self.reply(200, {"status": "ok", "res_type": "time_series",
                                    "query": q["query"][0], "from_date": frm * 1000,
                                    "to_date": to * 1000, "series": series},
                              [("X-RateLimit-Limit", "100"), ("X-RateLimit-Period", "10"),
                               ("X-RateLimit-Remaining", "50"), ("X-RateLimit-Reset", "5")])
        if u.path.startswith("/stats/"):
            if self.headers.get("Authorization") != auth:
                return self.reply(401, {"error": "unauthorized"})
            return self.reply(200, {"data": {"variant": u.path[7:], "rate": value("web")}})
        self.reply(404, {"error": "not found"})
    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
spid=$!

cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$(free_port)
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$(free_port)"}
    ports: {min: $ports, max: $((ports + 50))}
metricsProviders:
  - name: dd
    type: datadog
    address: "http://127.0.0.1:$fake"
    apiKeyFile: $tmp/dd-api
    appKeyFile: $tmp/dd-app
    timeout: 5s
  - name: stats
    type: web
    jsonPath: \$.data.rate
    headersFromFiles: {Authorization: $tmp/stats-auth}
    timeout: 2s
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
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
    - name: TRAFFIC_ROUTING
      with: {canary: 50}
    - name: ANALYSIS
      with:
        duration: 3s
        metrics:
          - name: dd-errors
            provider: dd
            query: "sum:trace.http.request.errors{service:{{app}},version:{{variant}}}.as_count()"
            interval: 1s
            expected: {max: 0.05}
          - name: web-rate
            provider: stats
            query: "http://127.0.0.1:$fake/stats/{{variant}}"
            interval: 1s
            expected: {max: 0.05}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 1; }

git init -q -b main
service v1
git add -A && git commit -qm "hello v1"
"$bin" validate "$tmp/upstream" -c "$tmp/kanaria.yaml" >"$tmp/validate.out" 2>&1
rc=$?
check "kanaria validate accepts both providers and their queries ($(tr '\n' ' ' <"$tmp/validate.out"))" $rc
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "v1 deploys ($(sql "select reason from deployments where id = 1"))" $rc

# 1. a healthy canary passes both checks (the first Datadog answer a 429 waited out)
service v2
git commit -qam "hello v2"
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 40
rc=$?
check "a healthy canary passes the datadog and web checks ($(sql "select reason from deployments where id = 2"))" $rc
n=$(sql "select count(*) from analysis_records where deployment = 2 and verdict = 'PASS' and check_name in ('dd-errors', 'web-rate')")
[ "$n" -ge 4 ]
rc=$?
check "their evaluations are stored as PASS ($n; $(sql "select check_name, verdict, bound, values_json from analysis_records where deployment = 2 and verdict != 'PASS'" | tr '\n' ' '))" $rc
q=$(sql "select query from analysis_records where deployment = 2 and check_name = 'dd-errors' limit 1")
[ "$q" = "sum:trace.http.request.errors{service:hello,version:canary}.as_count()" ]
check "the datadog query is filled in ($q)" $?
grep -q '"GET /api/v1/query?from=.*" 429' "$tmp/fake.log" && grep -q '"GET /api/v1/query?from=.*" 200' "$tmp/fake.log"
check "the 429 was waited out and the query asked again" $?

# 2. the web value over its bound: rolled back, the check named
echo 0.5 >"$tmp/web-value"
service v3
git commit -qam "hello v3"
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 40
check "a canary over the web check's bound is rolled back" $?
reason=$(sql "select reason from deployments where id = 3")
grep -q "analysis 'web-rate' failed: canary .*> max 0.05" <<<"$reason"
check "the reason names the web check and the numbers ($reason)" $?

! grep -qE "$api_key|$app_key|$token" "$tmp/log"
check "no key or token in kanaria's log" $?

stop_kanaria
