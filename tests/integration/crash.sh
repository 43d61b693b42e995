#!/usr/bin/env bash
# Crash safety of a rollout on the local platform, with real HAProxy and `kill -9`:
#  1. kill -9 of kanaria while CANARY_ROLLOUT and then PRIMARY_ROLLOUT wait for slow-starting
#     instances: the restarted kanaria finishes the release (SUCCESS), with the right number of
#     instances of the new version and nothing left over, and every request through HAProxy is
#     answered;
#  2. kill -9 during the rollback of a canary that never gets healthy: after the restart its
#     processes are gone and the traffic is on the primary;
#  3. a CANARY_ROLLOUT with `timeout: 3s` whose canary never gets healthy is rolled back well
#     before the local platform's 30 s start timeout;
#  4. a restart that cannot read apps.json keeps the instances it adopts.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
load_pid=
trap cleanup EXIT
trap 'exit 1' TERM INT

bind=$(free_port)
metrics=$(free_port)
api=$(free_port)
ports=$((30000 + RANDOM % 20000))
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
YAML
mkdir -p "$tmp/upstream/hello"
app() { # CANARY_ROLLOUT timeout
    cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
      timeout: $1
      with: {replicas: 1}
    - name: TRAFFIC_ROUTING
      with: {canary: 20}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
# Each version is tagged with this test's pid ("v2-1234"), so that its servers are told apart
# from other tests' on the same machine.
tag=$$
service() { test_service "$tmp/upstream/hello" hello "$1-$tag" "$bind" 2 "${2:-}"; } # version [env]
# The answers of the load so far, untagged, one a line ("v2", "failed", "error 503").
answers() { sed "s/-$tag\$//" "$tmp/load"; }

# The test servers of this test that run now, one "VERSION PORT" line each: whatever listens on
# a port of this test's range, asked for its version (tagged as this test's), whatever kanaria
# knows of it. (Sockets from /proc/net/tcp: reading other processes' /proc files can block.)
live() {
    python3 - "$tag" "$ports" "$bind" "$metrics" "$api" <<'PY'
import sys, urllib.request
tag, low, skip = "-" + sys.argv[1], int(sys.argv[2]), set(map(int, sys.argv[3:]))
listening = set()
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    local, state = line.split()[1], line.split()[3]
    port = int(local.split(":")[1], 16)
    if state == "0A" and low <= port <= low + 50 and port not in skip:
        listening.add(port)
seen = []
for port in sorted(listening):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as r:
            body = r.read().decode().strip()
    except Exception:
        continue
    if body.endswith(tag):
        seen.append("%s %d" % (body[:-len(tag)], port))
print("\n".join(sorted(seen)))
PY
}
# wait_live EXPECTED [SECONDS]: until the versions of live() are EXPECTED ("v2 v2")
wait_live() {
    local got
    for _ in $(seq 1 $((${2:-10} * 5))); do
        got=$(live | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//')
        [ "$got" = "$1" ] && return 0
        sleep 0.2
    done
    echo "  expected instances [$1], running [$got]"
    return 1
}
# need DESCRIPTION STATUS: a check the rest depends on; when it fails, the test ends here
need() {
    check "$1" "$2"
    [ "$2" -eq 0 ] || { summary; exit 1; }
}
# kill_at DEPLOYMENT STAGE VERSION COUNT: kill -9 kanaria as soon as COUNT instances of
# VERSION run (started, not healthy yet: HEALTHY_AFTER_MS); the stage must be the one running
kill_at() {
    local ok=1
    for _ in $(seq 1 300); do
        [ "$(live | grep -c "^$3 ")" -ge "$4" ] && { ok=0; break; }
        sleep 0.1
    done
    kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
    [ "$ok" -eq 0 ] || echo "  no $4 instances of $3 ran: [$(live | tr '\n' ' ')]"
    [ "$ok" -eq 0 ] && [ "$(sql "select status from stages where deployment = $1 and idx = $2")" = RUNNING ]
}

git init -q -b main
app 60s
service v1
git add -A && git commit -qm "hello v1"
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS" 60
need "v1 deploys" $?
start_load "http://127.0.0.1:$bind/" "$tmp/load"

# 1. kill -9 inside CANARY_ROLLOUT, then inside PRIMARY_ROLLOUT: the release still succeeds
service v2 ', HEALTHY_AFTER_MS: "8000"'
git commit -qam "hello v2, slow to start"
kill_at 2 0 v2 1
need "kill -9 while the v2 canary starts" $?
start
kill_at 2 2 v2 3
need "kill -9 while the v2 primaries start (after the restart)" $?
start
wait_for "v2 deployed" "select status from deployments where id = 2" "SUCCESS" 90
rc=$?
need "the restarted kanaria finishes v2 ($(sql "select status, reason from deployments where id = 2"))" $rc
wait_live "v2 v2"
check "two v2 instances run, and nothing else" $?
! answers | grep -qv '^v[12]$' && [ -s "$tmp/load" ]
rc=$?
check "every request through HAProxy was answered ($(answers | sort | uniq -c | tr '\n' ' '))" $rc
: >"$tmp/load"
sleep 1
! answers | grep -qv '^v2$'
rc=$?
check "the traffic is on v2 ($(answers | sort | uniq -c | tr '\n' ' '))" $rc

# 2. kill -9 during the rollback of a canary that never gets healthy
app 3s
service v3 ', UNHEALTHY: "1"'
git commit -qam "hello v3, never healthy"
wait_for "v3 rolling back" "select status not in ('PENDING', 'PLANNED', 'RUNNING') from deployments
    where id = 3" 1 60
need "v3's canary times out and rolls back" $?
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
start
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 60
need "the restarted kanaria completes the rollback" $?
wait_live "v2 v2"
check "the v3 canary's processes are gone after the restart" $?
: >"$tmp/load"
sleep 1
! answers | grep -qv '^v2$' && [ -s "$tmp/load" ]
rc=$?
check "the traffic is on the v2 primary ($(answers | sort | uniq -c | tr '\n' ' '))" $rc

# 2b. the same after a kill -9 inside a CANARY_ROLLOUT, restarted once it has timed out: the
#     resumed stage times out at once, and the rollback removes the canary it adopted
app 5s
service v4 ', UNHEALTHY: "1"'
git commit -qam "hello v4, never healthy"
kill_at 4 0 v4 1
need "kill -9 while the v4 canary starts" $?
live | grep -q '^v4 '
need "the v4 canary runs while kanaria is down" $?
sleep 5 # past the stage's timeout
start
wait_for "v4 rolled back" "select status from deployments where id = 4" "FAILURE" 60
need "the restarted kanaria rolls v4 back" $?
wait_live "v2 v2"
check "the adopted v4 canary is removed" $?

# 3. a stage timeout stops the start in flight: the rollback does not wait for the platform's
#    own 30 s start timeout
app 3s
service v5 ', UNHEALTHY: "1"'
git commit -qam "hello v5, never healthy"
wait_for "v5's canary starting" "select status from stages where deployment = 5 and idx = 0" \
    "RUNNING" 60
need "v5 starts its canary" $?
wait_for "v5 rolled back" "select status from deployments where id = 5" "FAILURE" 60
rc=$?
check "v5 is rolled back ($(sql "select reason from deployments where id = 5"))" $rc
# from the canary's start to the end of the rollback, as the store recorded them
took=$(sql "select r.finished_at - c.started_at from stages c, stages r where c.deployment = 5
    and c.idx = 0 and r.deployment = 5 and r.name = 'ROLLBACK'")
[ -n "$took" ] && [ "$took" -lt 15000 ]
check "the rollback ends within 15 s of the start of the 3 s CANARY_ROLLOUT (${took} ms)" $?
wait_live "v2 v2"
check "no v5 instance is left" $?

# 4. a restart that cannot read apps.json (moved, edited by hand) knows nothing of what runs:
#    it keeps the instances it adopts, rather than stopping them as left over
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
echo '{"hello": ' >"$tmp/data/local/local/apps.json"
start
sleep 2
wait_live "v2 v2" 5
check "a restart with an unreadable apps.json stops none of the running instances" $?
grep -q "cannot read .*apps.json" "$tmp/log"
check "it says so in the log" $?

kill "$load_pid" 2>/dev/null; load_pid=
stop_kanaria
