#!/usr/bin/env bash
# SLOs and the error-budget gate on real Prometheus (Debian), which scrapes every second a
# metrics file this test rewrites: the SLO's good and total events, and the canary's error ratio.
# An app whose budget is spent waits BLOCKED (its reason has the numbers) and starts once the
# budget recovers; under `action: approve`, `kanaria approve` lets it go; a `[kanaria hotfix]`
# commit passes, recorded; a burn-rate ANALYSIS passes a canary whose error ratio burns slowly and
# fails one that burns the budget too fast; with Prometheus stopped the gate blocks (onError:
# block), naming the error. /metrics, the API and `kanaria status` show the readings.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
ext_pid=
trap cleanup EXIT

bind=$(free_port)
prom=$(free_port)
target=$(free_port)
api=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
export KANARIA_TOKEN=tok-alice
get() { curl -s -H "Authorization: Bearer $KANARIA_TOKEN" "$KANARIA_ADDR$1"; }

# gauges GOOD TOTAL CANARY_ERROR_RATIO: what Prometheus scrapes next
gauges() {
    printf 'slo_good %s\nslo_total %s\ncanary_error_ratio %s\n' "$1" "$2" "$3" >"$tmp/www/m.tmp"
    mv "$tmp/www/m.tmp" "$tmp/www/metrics.txt"
}
mkdir -p "$tmp/www"
gauges 1000 1000 0.0001
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$target" >/dev/null 2>&1 &
ext_pid=$!
start_prometheus slo "$target" /metrics.txt

cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
driftInterval: 1s
users:
  - {name: alice, role: approver, tokenSha256: $(hash tok-alice)}
platforms:
  - {name: local, type: local, ports: {min: $ports, max: $((ports + 50))}}
metricsProviders:
  - {name: prom, type: prometheus, address: "http://127.0.0.1:$prom", timeout: 2s}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
mkdir -p "$tmp/upstream/hello" "$tmp/upstream/.kanaria"
# the SLO is shared by the repository's apps; the app names it
cat >"$tmp/upstream/.kanaria/slo.yaml" <<'YAML'
slos:
  - name: availability
    objective: 99.9
    good: last_over_time(slo_good[{{window}}])
    total: last_over_time(slo_total[{{window}}])
YAML
app() { # action
    cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  slos: [{name: availability}]
  errorBudgetPolicy: {minRemaining: 0%, action: $1}
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
    - name: ANALYSIS
      with:
        duration: 2s
        metrics:
          - name: burn
            provider: prom
            strategy: burn-rate
            slo: availability
            maxBurnRate: 14.4
            query: last_over_time(canary_error_ratio[1m])
            interval: 1s
    - name: PRIMARY_ROLLOUT
    - name: CANARY_CLEAN
YAML
}
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 1; }
# budget RE: wait until /metrics shows the app's budget remaining matching RE
budget() {
    for _ in $(seq 1 100); do
        get /metrics |
            grep -E "^kanaria_slo_error_budget_remaining\{repo=\"deploy\",app=\"hello\",slo=\"availability\"\} $1" >/dev/null &&
            return 0
        sleep 0.2
    done
    echo "  waited for the budget to read [$1]: $(get /metrics | grep '^kanaria_slo_' | tr '\n' ' ')"
    return 1
}
status_of() { sql "select status from deployments where id = $1"; }
reason_of() { sql "select reason from deployments where id = $1"; }

git init -q -b main
app block
service v1
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
rc=$?
check "v1 deploys ($(reason_of 1))" $rc
budget 1
check "the SLO is read once the app was seen: budget remaining 1 on /metrics" $?

# 1. the budget is spent: the PIPELINE deployment waits BLOCKED with the numbers
gauges 990 1000 0.0001
budget -9
check "99% against 99.9%: /metrics shows -9 of the budget left" $?
# the window's queries answer one by one: wait for the 1h burn rate of the same gauges
rc=1
for _ in $(seq 1 100); do
    get /metrics |
        grep -E '^kanaria_slo_burn_rate\{repo="deploy",app="hello",slo="availability",window="1h"\} (10|9\.99+[0-9]*|10\.00+[0-9]*)$' >/dev/null &&
        { rc=0; break; }
    sleep 0.2
done
check "and a burn rate of 10 over 1h ($(get /metrics | grep '^kanaria_slo_burn_rate' | tr '\n' ' '))" $rc
service v2
git commit -qam "hello v2"
wait_for "v2 blocked" "select status from deployments where id = 2" "BLOCKED"
check "v2 waits BLOCKED while the budget is spent" $?
reason=$(reason_of 2)
grep -qF "error budget of SLO 'availability' spent: SLI 99.000% over 30d against an objective of 99.9%, -900.000% of the budget left (minRemaining 0%); waits until it recovers" <<<"$reason"
check "its reason has the SLO, SLI, objective, window and budget ($reason)" $?
out=$("$bin" status hello 2>&1)
grep -q "^waiting: .*SLO 'availability' spent" <<<"$out" &&
    grep -q "^slo availability: *SLI 99.000% over 30d (objective 99.9%), budget -900.0% left, burn 1h 10.00 · 6h 10.00 · 3d 10.00, read [0-9]*s ago" <<<"$out"
rc=$?
check "kanaria status shows why and the SLO's numbers ($(grep -E '^(waiting|slo)' <<<"$out" | tr '\n' ' '))" $rc
get /api/v1/apps/hello |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["slos"][0]; sys.exit(0 if s["name"]=="availability" and abs(s["budget_remaining"]+9)<1e-6 and s["window"]=="30d" and s["error"]=="" else 1)'
check "the app API has the SLO's reading" $?

# 2. the budget recovers: v2 starts, and the burn-rate analysis passes its slow-burning canary
gauges 1000 1000 0.0001
wait_for "v2 deployed" "select status from deployments where id = 2" "SUCCESS" 40
rc=$?
check "v2 starts once the budget recovers, and succeeds ($(reason_of 2))" $rc
rec=$(sql "select verdict, bound from analysis_records where deployment = 2 and check_name = 'burn' limit 1")
[ "$rec" = "PASS|maxBurnRate 14.4 (SLO 'availability', objective 99.9%)" ]
check "the burn-rate check passed ($rec)" $?
grep -qF "canary burns the budget of SLO 'availability' at 0.1, within maxBurnRate 14.4 (error ratio 0.0001 against an objective of 99.9%)" "$tmp/log"
check "with its numbers logged" $?

# 3. action approve: spent again, v3 waits until someone approves it
gauges 990 1000 0.0001
budget -9
check "the budget is spent again" $?
app approve
service v3
git commit -qam "hello v3"
wait_for "v3 blocked" "select status from deployments where id = 3" "BLOCKED"
check "v3 waits BLOCKED" $?
grep -qF "waits until it recovers or \`kanaria approve hello\`" <<<"$(reason_of 3)"
rc=$?
check "its reason says it may be approved ($(reason_of 3))" $rc
out=$("$bin" approve hello 2>&1)
check "kanaria approve hello is accepted ($out)" $?
wait_for "v3 deployed" "select status from deployments where id = 3" "SUCCESS" 40
rc=$?
check "the approved v3 is deployed ($(reason_of 3))" $rc
ev=$(sql "select message from events where deployment = 3 and type = 'GATE_PASSED'")
grep -q "SLO 'availability' spent .*approved by " <<<"$ev"
check "the pass is recorded with who approved it ($ev)" $?

# 4. a hotfix passes the spent budget, recorded as such
service v4
git commit -qam "hello v4 [kanaria hotfix]"
wait_for "v4 deployed" "select status from deployments where id = 4" "SUCCESS" 40
rc=$?
check "a [kanaria hotfix] commit passes the spent budget ($(reason_of 4))" $rc
ev=$(sql "select message from events where deployment = 4 and type = 'GATE_PASSED'")
grep -q "passed the gates as a hotfix.*without that: error budget of SLO 'availability' spent" <<<"$ev"
check "recorded as a hotfix ($ev)" $?

# 5. a canary whose errors burn the budget too fast fails the burn-rate analysis
gauges 1000 1000 0.05
budget 1
check "the budget is back" $?
service v5
git commit -qam "hello v5 (5% errors)"
wait_for "v5 rolled back" "select status from deployments where id = 5" "FAILURE" 40
check "a canary burning the budget 50 times too fast is rolled back" $?
reason=$(reason_of 5)
grep -qF "analysis 'burn' failed: canary burns the budget of SLO 'availability' at 50 > maxBurnRate 14.4 (error ratio 0.05 against an objective of 99.9%)" <<<"$reason"
check "the reason names the SLO and the numbers ($reason)" $?

# 5b. a restart: the deployed app's SLO is read again from its last good commit, before any
# deployment of it
kill -TERM "$pid"; wait "$pid"; pid=
gauges 990 1000 0.0001
start
budget -9
check "after a restart the SLO of the deployed app is read again, with no new deployment" $?
[ "$(sql "select count(*) from deployments")" = 5 ]
check "no deployment was made for it" $?
gauges 1000 1000 0.0001
budget 1
check "the budget is back after the restart" $?

# 6. Prometheus stopped: the SLO cannot be read, and under onError block the gate holds
kill "$prom_pid"; wait "$prom_pid" 2>/dev/null; prom_pid=
for _ in $(seq 1 50); do
    get /api/v1/apps/hello | grep '"error": *"metrics provider' >/dev/null && break
    sleep 0.2
done
gauges 1000 1000 0.0001
service v6
git commit -qam "hello v6"
wait_for "v6 blocked" "select status from deployments where id = 6" "BLOCKED"
check "with Prometheus gone v6 waits BLOCKED" $?
reason=$(reason_of 6)
grep -qF "SLO 'availability' cannot be read (onError: block): metrics provider 'prom': " <<<"$reason"
check "its reason names the provider's error ($reason)" $?

stop_kanaria
