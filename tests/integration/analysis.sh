#!/usr/bin/env bash
# ANALYSIS on real data (one check from the repository's shared templates): Prometheus (Debian) scrapes the managed HAProxy's exporter while a load
# generator sends steady traffic through it to the test HTTP server. A healthy canary passes
# (threshold and Mann-Whitney checks, an HTTP probe); a canary answering 30% 500s fails within
# two intervals and is rolled back, with traffic on the primary and the reason stored; Prometheus
# stopped mid-analysis gives INCONCLUSIVE evaluations and the check's limit fails the stage; an
# HTTP probe of a failing endpoint fails the stage; a background analysis (spec.analysis) that
# fails during a WAIT cancels it and rolls the deployment back.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
load_pid=
trap cleanup EXIT

bind=$(free_port)
metrics=$(free_port)
prom=$(free_port)
dead=$(free_port)
api=$(free_port)
ports=$((30000 + RANDOM % 20000))

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
YAML
mkdir -p "$tmp/upstream/hello"
# the shared template names HAProxy's labels through the local platform's placeholders; the
# app's own query the older way, through {{app}} and {{variant}}
rate='sum(rate(haproxy_server_http_responses_total{proxy="{{backend}}",server=~"{{server}}.*",code="5xx"}[{{window}}])) / sum(rate(haproxy_server_http_responses_total{proxy="{{backend}}",server=~"{{server}}.*"}[{{window}}]))'
per_server='sum by (server) (rate(haproxy_server_http_responses_total{proxy="{{app}}",server=~"{{variant}}-.*",code="5xx"}[{{window}}]))'
app() { # probe-url
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
        duration: 12s
        metrics:
          - name: error-rate
            template: error-rate
            interval: 4s
            failureLimit: 1
          - name: errors-vs-primary
            provider: prom
            query: '$per_server'
            interval: 4s
            strategy: canary-primary
            deviation: high
            minSamples: 3
            failureLimit: 1
        http:
          - name: probe
            url: "$1"
            interval: 4s
            timeout: 1s
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
# the error rate is a template shared by the repository's apps
mkdir -p "$tmp/upstream/.kanaria"
cat >"$tmp/upstream/.kanaria/analysis-templates.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: AnalysisTemplate
spec:
  metrics:
    - name: error-rate
      provider: prom
      query: '$rate'
      interval: 10s
      expected: {max: 0.05}
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 2 ", ERROR_RATE: \"$2\""; } # version error-rate
# steady load: about 50 requests a second through HAProxy; it writes what it saw per version
start_load "http://127.0.0.1:$bind/" "$tmp/load"

git init -q -b main
app "http://127.0.0.1:$bind/healthz"
service v1 0
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "v1 deploys ($(sql "select reason from deployments where id = 1"))" $rc

# 1. a healthy canary passes the analysis
service v2 0
git commit -qam "hello v2"
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 90
rc=$?
check "a healthy canary passes the analysis and is promoted ($(sql "select reason from deployments where id = 2"))" $rc
passes=$(sql "select count(*) from analysis_records where deployment = 2 and verdict = 'PASS'")
[ "$passes" -ge 6 ]
rc=$?
check "its evaluations are stored as PASS ($passes; $(sql "select check_name, verdict, bound from analysis_records where deployment = 2 and verdict != 'PASS'" | tr '\n' ' '))" $rc
q=$(sql "select query from analysis_records where deployment = 2 and check_name = 'error-rate' limit 1")
grep -q 'proxy="hello",server=~"canary-.\*"' <<<"$q" && grep -q '\[4s\]' <<<"$q"
check "the query is stored as sent, with its template and the platform's placeholders filled in ($q)" $?
q=$(sql "select query from analysis_records where deployment = 2 and check_name = 'errors-vs-primary' limit 1")
grep -q 'proxy="hello",server=~"canary-.\*"' <<<"$q"
check "a query on {{app}} and {{variant}} is filled in as before ($q)" $?

# 2. a canary answering 30% 500s fails within two intervals and is rolled back
service v3 0.3
git commit -qam "hello v3 (30% errors)"
wait_for "v3 analysing" "select count(*) from stages where deployment = 3 and idx = 2 and status = 'RUNNING'" 1 60
check "v3 reaches the analysis" $?
started=$(date +%s)
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 60
check "a canary with 30% errors is rolled back" $?
took=$(( $(date +%s) - started ))
[ "$took" -le 11 ]
check "the analysis failed within two intervals, before its duration was over (${took}s)" $?
reason=$(sql "select reason from deployments where id = 3")
grep -Eq "analysis '(error-rate|errors-vs-primary)' failed: canary .*(> max 0.05|is higher than primary).*\(rolled back\)" <<<"$reason"
check "the reason names the check and the numbers ($reason)" $?
[ "$(sql "select count(*) from analysis_records where deployment = 3 and verdict = 'FAIL'")" -ge 2 ]
check "the failed evaluations are stored" $?
: >"$tmp/load"
sleep 2
! grep -qv '^v2$' "$tmp/load"
rc=$?
check "after the rollback every request goes to v2 ($(sort "$tmp/load" | uniq -c | tr '\n' ' '))" $rc

# the postmortem of the rolled-back v3: its timeline in order, the failing check with its
# numbers, the rollback's steps; the JSON form parses; a success has none (409)
ct=$(sql "select commit_time from deployments where id = 3")
[ "$ct" -gt 0 ] && [ "$ct" -le "$(sql "select created_at from deployments where id = 3")" ]
check "the commit's time is stored before the deployment's creation ($ct)" $?
pm=$(KANARIA_ADDR="http://127.0.0.1:$api" "$bin" postmortem 3 2>&1)
line() { grep -n -m1 -- "$1" <<<"$pm" | cut -d: -f1; } # PATTERN: its first line number in pm
order=("| commit " "| planned (PIPELINE" "| stage 1 TRAFFIC_ROUTING started" "| stage 2 ANALYSIS started"
    "| first failing evaluation: check '" "| stage 2 ANALYSIS finished: FAILURE" "| ROLLING_BACK: " "| rollback started"
    "| rollback finished: SUCCESS" "| FAILURE: ")
rc=0 prev=0
for p in "${order[@]}"; do
    n=$(line "$p")
    if [ -z "$n" ] || [ "$n" -le "$prev" ]; then rc=1; echo "out of order or missing: $p"; fi
    prev=${n:-$prev}
done
[ $rc = 0 ] || printf '%s\n' "$pm"
check "the postmortem's timeline goes commit, plan, stages, first failing evaluation, rollback, FAILURE" $rc
fail_check=$(grep -Eo "analysis '(error-rate|errors-vs-primary)' failed" <<<"$reason" | cut -d"'" -f2)
grep -q "^- \*\*Check:\*\* $fail_check$" <<<"$pm" &&
    grep -Eq '^- \*\*Numbers:\*\* canary .*[0-9]' <<<"$pm" &&
    grep -Eq '^- \*\*Bound:\*\* .*[0-9]' <<<"$pm" &&
    grep -q '^| traffic back to the primary | ' <<<"$pm" && grep -q '^| removing the canary | ' <<<"$pm"
rc=$?
check "it names the failing check ($fail_check) with its numbers, and the rollback's steps ($(grep -E '^- \*\*(Numbers|Bound)' <<<"$pm" | tr '\n' ' '))" $rc
grep -Eq '^- the canary served up to 50% of the traffic for [0-9.]+(ms|s|m)' <<<"$pm"
rc=$?
check "its impact gives the canary's share and time ($(grep -m1 'the canary' <<<"$pm"))" $rc
KANARIA_ADDR="http://127.0.0.1:$api" "$bin" postmortem 3 --json | python3 -c '
import json, sys
pm = json.load(sys.stdin)
at = [e["at"] for e in pm["timeline"]]
assert at == sorted(at), at
assert pm["detection"]["check"] == sys.argv[1], pm["detection"]
assert pm["detection"]["verdict"] == "FAIL"
assert pm["resolution"]["rollback"]["status"] == "SUCCESS"
assert pm["summary"]["outcome"] == "FAILURE" and pm["summary"]["rolled_back"]
assert pm["root_cause"] == "" and pm["follow_ups"] == []
' "$fail_check"
check "the JSON postmortem parses and agrees" $?
out=$(KANARIA_ADDR="http://127.0.0.1:$api" "$bin" postmortem 2 2>&1)
rc=$?
[ $rc -ne 0 ] && grep -q "deployment 2 ended SUCCESS: it neither failed nor rolled back.*(HTTP 409)" <<<"$out"
check "a successful deployment's postmortem is refused with 409 ($out)" $?
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api/api/v1/deployments/999/postmortem")
ctype=$(curl -s -o /dev/null -w '%{content_type}' -H 'Accept: text/markdown' \
    "http://127.0.0.1:$api/api/v1/deployments/3/postmortem")
bad=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$api/api/v1/deployments/3/postmortem?format=xml")
[ "$code" = 404 ] && [ "${ctype%%;*}" = text/markdown ] &&
    grep -q "'format' must be markdown or json, got 'xml'" <<<"$bad" && [ "${bad##* }" = 400 ]
check "an unknown deployment is 404, Accept: text/markdown gets Markdown, another format 400 ($code, $ctype, ${bad##* })" $?

# 3. Prometheus stopped mid-analysis: INCONCLUSIVE, then the inconclusive limit fails the stage
service v4 0
git commit -qam "hello v4"
wait_for "v4 analysing" "select count(*) from stages where deployment = 4 and idx = 2 and status = 'RUNNING'" 1 60
check "v4 reaches the analysis" $?
kill "$prom_pid"; wait "$prom_pid" 2>/dev/null; prom_pid=
wait_for "v4 rolled back" "select status from deployments where id = 4" "FAILURE" 60
check "with Prometheus gone the analysis fails" $?
reason=$(sql "select reason from deployments where id = 4")
grep -q "inconclusive evaluations, 1 allowed (last: prometheus: " <<<"$reason"
check "the reason says the evaluations were inconclusive and why ($reason)" $?
start_prometheus haproxy "$metrics"

# 4. an HTTP probe of a failing endpoint fails the stage
app "http://127.0.0.1:$dead/healthz"
service v5 0
git commit -qam "hello v5, probing a dead endpoint"
wait_for "v5 rolled back" "select status from deployments where id = 5" "FAILURE" 90
check "a failing HTTP probe fails the analysis" $?
reason=$(sql "select reason from deployments where id = 5")
grep -q "analysis 'probe' failed: GET http://127.0.0.1:$dead/healthz: " <<<"$reason"
check "the reason names the probe ($reason)" $?

# 5. background analysis from the canary's traffic until the promotion: a canary answering 30%
# 500s fails it during the WAIT, which is cancelled, and the deployment is rolled back
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  analysis:
    startingStage: traffic
    metrics:
      - {name: error-rate, template: error-rate, interval: 3s}
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: TRAFFIC_ROUTING
      id: traffic
      with: {canary: 50}
    - name: WAIT
      with: {duration: 5m}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
service v6 0.3
git commit -qam "hello v6 (30% errors), analysed in the background"
wait_for "v6 waiting" "select count(*) from stages where deployment = 6 and idx = 2 and status = 'RUNNING'" 1 60
check "v6 reaches the WAIT with its background analysis running" $?
wait_for "v6 rolled back" "select status from deployments where id = 6" "FAILURE" 40
check "the background analysis fails the deployment during the WAIT" $?
reason=$(sql "select reason from deployments where id = 6")
grep -Eq "^background analysis failed: analysis 'error-rate' failed: canary .* > max 0.05 .*\(rolled back\)$" <<<"$reason"
check "the reason is the background analysis's, with the check's ($reason)" $?
[ "$(sql "select status from stages where deployment = 6 and idx = 2")" = CANCELLED ] &&
    [ "$(sql "select status from stages where deployment = 6 and idx = 7")" = FAILURE ]
check "the WAIT is cancelled and the background analysis (stage 7) failed" $?
[ "$(sql "select count(*) from analysis_records where deployment = 6 and stage = 7 and verdict = 'FAIL'")" -ge 1 ]
check "its evaluations are stored under stage 7" $?
out=$(KANARIA_ADDR="http://127.0.0.1:$api" "$bin" get deployment 6 2>&1)
grep -q "ANALYSIS (background)" <<<"$out" &&
    grep -q "background analysis, from stage 1 TRAFFIC_ROUTING until stage 3 PRIMARY_ROLLOUT starts" <<<"$out"
rc=$?
check "kanaria get deployment shows the background analysis and its span ($(grep -A1 background <<<"$out" | head -3 | tr '\n' ' '))" $rc
: >"$tmp/load"
sleep 2
! grep -qv '^v2$' "$tmp/load"
rc=$?
check "after the rollback every request goes to v2 ($(sort "$tmp/load" | uniq -c | tr '\n' ' '))" $rc

stop_kanaria
