#!/usr/bin/env bash
# The control API and the client commands against a real `kanaria serve` (local platform, real
# HAProxy, a Git repository polled only once an hour, so that only webhooks bring new commits):
# tokens and roles, WAIT_APPROVAL with an approvers list (a viewer and an approver who is not
# listed are refused; the listed one promotes), a rejection that rolls back, bad tokens, bodies
# too large or malformed, and push webhooks signed GitHub's way and the generic way.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
printf '%s\n' "hook-secret-5e1f" >"$tmp/secret"
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
  - name: deploy
    url: "file://$tmp/upstream"
    branch: main
    pollInterval: 1h
    webhook: {secretFile: $tmp/secret}
  - name: broken
    url: "https://kn-user:s3cret-pw@127.0.0.1:1/nothing.git"
    branch: main
    pollInterval: 1h
users:
  - {name: vic, role: viewer, tokenSha256: $(hash tok-vic)}
  - {name: bob, role: approver, tokenSha256: $(hash tok-bob)}
  - {name: alice, role: approver, tokenSha256: $(hash tok-alice)}
YAML
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
      with: {canary: 10}
    - name: WAIT_APPROVAL
      with: {approvers: [alice], minApprovers: 1}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 1; } # version
# hook SIGNATURE_HEADER SECRET: a push webhook signed with SECRET; prints the HTTP status
hook() {
    local body sig
    body="{\"ref\":\"refs/heads/main\",\"after\":\"$(git rev-parse HEAD)\",\"repository\":{\"clone_url\":\"file://$tmp/upstream\"}}"
    if command -v openssl >/dev/null; then
        sig=$(printf %s "$body" | openssl dgst -sha256 -hmac "$2" | sed 's/.*= //')
    else # the openssl command is not among the packages `make deps` installs
        sig=$(printf %s "$body" | python3 -c 'import hashlib, hmac, sys
print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())' "$2")
    fi
    curl -s -o "$tmp/body" -w '%{http_code}' -X POST -H "$1: sha256=$sig" \
        -H 'Content-Type: application/json' --data-binary "$body" "$KANARIA_ADDR/api/v1/webhooks/git"
}

git init -q -b main
service v1
git add -A && git commit -qm "hello v1"

# 1. the first fetch at start deploys v1; reads need a token of any role
start
wait_for "v1 deployed" "select status from deployments" "SUCCESS" 60
check "the first commit deploys v1" $?
[ "$(code GET /healthz "")" = 200 ]
check "GET /healthz needs no token" $?
[ "$(code GET /api/v1/apps "")" = 401 ]
check "GET /api/v1/apps without a token is 401" $?
[ "$(code GET /api/v1/apps tok-nobody)" = 401 ] && grep -q "unknown token" "$tmp/body"
rc=$?
check "an unknown token is 401 ($(cat "$tmp/body"))" $rc
out=$(KANARIA_TOKEN=tok-nobody "$bin" status 2>&1)
[ $? -eq 1 ] && grep -q "unknown token" <<<"$out"
check "kanaria status with a bad token exits 1 with the server's message ($out)" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" status)
[ $? -eq 0 ] && grep -q "^hello .*SUCCESS" <<<"$out"
check "kanaria status lists the app ($out)" $?
[ "$(code GET /api/v1/apps/nope tok-vic)" = 404 ] && [ "$(code GET /api/v1/deployments/99 tok-vic)" = 404 ]
check "an unknown app or deployment is 404" $?
[ "$(code DELETE /api/v1/apps tok-vic)" = 405 ] && [ "$(code GET /api/v1/nothing tok-vic)" = 404 ]
check "a wrong method is 405, an unknown route 404" $?
allow=$(curl -s -o /dev/null -D - -X POST -H "Authorization: Bearer tok-vic" \
    "$KANARIA_ADDR/api/v1/repositories" | tr -d '\r' | sed -n 's/^[Aa]llow: //p')
[ "$allow" = GET ] && [ "$(code GET /api/v1/apps/hello/approve tok-bob)" = 405 ] &&
    [ "$(code POST /api/v1/apps/hello/nothing tok-bob)" = 404 ]
check "405 names the allowed method in Allow ($allow); an unknown action is 404" $?

# 1b. repositories: head, last fetch, last error, apps; never a credential
wait_for "the broken repository failed" "select error != '' from repositories where name = 'broken'" 1 30
check "the repository that cannot be fetched records its error" $?
[ "$(code GET /api/v1/repositories tok-vic)" = 200 ] &&
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["repositories"]
d, b = r
assert len(r) == 2 and d["name"] == "deploy" and b["name"] == "broken"
assert d["head"] == sys.argv[2] and d["branch"] == "main" and d["apps"] == 1
assert d["fetched_at"] > 0 and d["error"] == ""
assert b["apps"] == 0 and b["head"] == "" and b["error"] != "" and b["failing_since"] > 0
assert b["url"] == "https://127.0.0.1:1/nothing.git"' "$tmp/body" "$(git rev-parse HEAD)" &&
    ! grep -q "s3cret\|kn-user" "$tmp/body"
rc=$?
check "GET /api/v1/repositories: head, fetch, error, apps, url without credentials ($(cat "$tmp/body"))" $rc
[ "$(code GET /api/v1/repositories/deploy tok-vic)" = 200 ] && grep -q '"name": "deploy"' "$tmp/body" &&
    [ "$(code GET /api/v1/repositories/nope tok-vic)" = 404 ] && grep -q "no repository 'nope'" "$tmp/body" &&
    [ "$(code GET /api/v1/repositories "")" = 401 ]
check "one repository by name; an unknown one is 404; no token is 401" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" repos)
[ $? -eq 0 ] && grep -q "^deploy  *main  *$(git rev-parse --short=7 HEAD) .* 1  *-$" <<<"$out" &&
    grep -q "^broken  *main  *- .* 0  *.*" <<<"$out" && ! grep -q "s3cret" <<<"$out"
check "kanaria repos lists both ($out)" $?
out=$(KANARIA_TOKEN=tok-vic "$bin" repos broken)
[ $? -eq 0 ] && grep -q "^error: .*failing since" <<<"$out" && grep -q "^url: *https://127.0.0.1:1/nothing.git" <<<"$out"
check "kanaria repos REPO shows its error ($out)" $?

# 1c. an analysis record of 1000 samples per variant comes back whole (it was cut at 4 KiB)
python3 -c 'import json, sqlite3, sys
v = {"canary": [i / 1000 for i in range(1000)], "primary": [i / 999 for i in range(1000)]}
c = sqlite3.connect(sys.argv[1], timeout=5)
c.execute("INSERT INTO analysis_records (deployment, stage, at, check_name, query, values_json,"
          " bound, verdict) VALUES (1, 1, 1, ?, ?, ?, ?, ?)",
          ("big", "q" * 5000, json.dumps(v), "< 1", "PASS"))
c.commit()' "$tmp/data/kanaria.db"
[ "$(code GET /api/v1/deployments/1 tok-vic)" = 200 ] && python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
a = [r for s in d["stages"] for r in s["analysis"] if r["check"] == "big"][0]
assert len(a["values"]["canary"]) == 1000 and len(a["values"]["primary"]) == 1000
assert a["values"]["canary"][999] == 0.999 and a["query"] == "q" * 5000' "$tmp/body"
check "an analysis record of 1000 samples per variant is read back whole through the API" $?

# metric FILE SERIES: the value of SERIES (name{labels} as rendered) in a scrape, 0 when absent
metric() { awk -v s="$2" '$1 == s { v = $2 } END { print v == "" ? 0 : v }' "$1"; }
[ "$(code GET /metrics tok-vic)" = 200 ] && cp "$tmp/body" "$tmp/m0"
check "GET /metrics with a viewer token is 200" $?
awk -v f="$(metric "$tmp/m0" 'kanaria_git_fetch_failures_total{repo="broken"}')" \
    -v b="$(metric "$tmp/m0" 'kanaria_git_fetch_duration_seconds_count{repo="broken"}')" \
    -v d="$(metric "$tmp/m0" 'kanaria_git_fetch_duration_seconds_count{repo="deploy"}')" \
    'BEGIN { exit !(f >= 1 && b >= 1 && d >= 1) }' &&
    [ "$(metric "$tmp/m0" 'kanaria_git_fetch_failures_total{repo="deploy"}')" = 0 ] &&
    grep -q '^# TYPE kanaria_git_fetch_duration_seconds histogram$' "$tmp/m0" &&
    grep -q '^kanaria_git_fetch_duration_seconds_bucket{repo="deploy",le="+Inf"} ' "$tmp/m0"
check "/metrics counts the fetches and the failures of the broken repository" $?
now=$(date +%s)
awk -v st="$(metric "$tmp/m0" process_start_time_seconds)" -v now="$now" \
    -v rss="$(metric "$tmp/m0" process_resident_memory_bytes)" \
    -v fds="$(metric "$tmp/m0" process_open_fds)" \
    'BEGIN { exit !(st > now - 600 && st <= now + 1 && rss > 1000000 && fds > 3) }' &&
    grep -q '^process_cpu_seconds_total [0-9]' "$tmp/m0"
check "/metrics has the process's start time, memory, open fds and CPU time" $?
if command -v promtool >/dev/null; then
    promtool check metrics <"$tmp/m0" >"$tmp/promtool" 2>&1
    st=$?; check "promtool check metrics accepts /metrics ($(cat "$tmp/promtool"))" "$st"
else
    echo "SKIPPED: promtool check metrics (promtool is not installed)"
fi

# 2. webhooks: a bad signature fetches nothing; a good one fetches and deploys v2
service v2
git commit -qam "hello v2"
[ "$(hook X-Hub-Signature-256 wrong-secret)" = 401 ]
check "a webhook with a bad signature is 401" $?
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "$KANARIA_ADDR/api/v1/webhooks/git")" = 401 ]
check "a webhook without a signature is 401" $?
sleep 2
[ "$(sql "select count(*) from deployments")" = 1 ]
check "nothing was fetched for them" $?
[ "$(hook X-Hub-Signature-256 hook-secret-5e1f)" = 202 ]
rc=$?
check "a GitHub webhook with a good signature is 202 ($(cat "$tmp/body"))" $rc
wait_for "v2 planned" "select count(*) from deployments" 2 5
check "the webhook's fetch plans v2 within seconds (poll interval is 1h)" $?
waiting_stage 2
check "v2 waits for approval" $?
[ "$(code GET /metrics tok-vic)" = 200 ] && cp "$tmp/body" "$tmp/m1"
for r in bad_signature unsigned accepted; do
    s="kanaria_webhook_deliveries_total{result=\"$r\"}"
    [ "$(metric "$tmp/m1" "$s")" = $(($(metric "$tmp/m0" "$s") + 1)) ]
    check "/metrics counts one more webhook $r" $?
done
s='kanaria_git_fetch_duration_seconds_count{repo="deploy"}'
[ "$(metric "$tmp/m1" "$s")" -gt "$(metric "$tmp/m0" "$s")" ] &&
    awk -v l="$(metric "$tmp/m1" 'kanaria_reconcile_lag_seconds{repo="deploy"}')" \
        'BEGIN { exit !(l > 0 && l < 60) }' && grep -q '^kanaria_reconcile_lag_seconds{repo="deploy"} ' "$tmp/m1" &&
    [ "$(metric "$tmp/m1" kanaria_engine_running_deployments)" = 1 ] &&
    [ "$(metric "$tmp/m1" kanaria_engine_queue_depth)" = 0 ]
check "/metrics counts the webhook's fetch, its reconcile lag and the deployment running" $?

# 3. approvals: a viewer, an approver not listed, bad bodies, then alice
out=$(KANARIA_TOKEN=tok-vic "$bin" approve hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 403" <<<"$out"
check "a viewer cannot approve: exit 1 and 403 ($out)" $?
out=$(KANARIA_TOKEN=tok-bob "$bin" approve hello 2>&1)
[ $? -eq 1 ] && grep -q "not an approver of this stage" <<<"$out" && grep -q "HTTP 403" <<<"$out"
check "bob is an approver but not in the stage's list: 403 ($out)" $?
[ "$(code POST /api/v1/apps/hello/approve tok-alice -d '{"reason": ')" = 400 ] &&
    grep -q "malformed JSON at line 1" "$tmp/body"
rc=$?
check "a malformed body is 400 with jansson's position ($(cat "$tmp/body"))" $rc
head -c 70000 /dev/zero | tr '\0' x >"$tmp/big"
[ "$(code POST /api/v1/apps/hello/approve tok-alice --data-binary @"$tmp/big")" = 413 ]
check "a body over 64 KiB is 413" $?
[ "$(sql "select count(*) from approvals")" = 0 ]
check "no refused call recorded an approval" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" approve hello)
check "alice approves (exit 0: $out)" $?
wait_for "v2 promoted" "select status from deployments where id = 2" "SUCCESS" 60
check "alice's approval promotes v2" $?
[ "$(sql "select actor from events where type = 'APPROVED' and deployment = 2")" = alice ] &&
    sql "select message from events where type = 'APPROVED'" | grep -q "from 127.0.0.1:"
check "the approval is in the audit log with its user and address" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" approve hello 2>&1)
[ $? -eq 1 ] && grep -q "HTTP 409" <<<"$out"
check "approving when nothing waits is 409 ($out)" $?

# 4. a generic-signed webhook brings v3; alice rejects it and it rolls back
service v3
git commit -qam "hello v3"
[ "$(hook X-Kanaria-Signature-256 hook-secret-5e1f)" = 202 ]
check "a generic webhook with a good signature is 202" $?
waiting_stage 3
check "v3 waits for approval" $?
out=$(KANARIA_TOKEN=tok-alice "$bin" reject hello --reason "error rate looks high")
check "alice rejects (exit 0: $out)" $?
wait_for "v3 rolled back" "select status from deployments where id = 3" "FAILURE" 60
check "the rejection rolls v3 back" $?
reason=$(sql "select reason from deployments where id = 3")
grep -q "rejected by alice" <<<"$reason"
check "the reason names the rejection ($reason)" $?
sql "select message from events where type = 'REJECTED'" | grep -q "error rate looks high"
check "the rejection's reason is in the audit log" $?
[ "$(sql "select rolled_back_from != '' from apps where name = 'hello'")" = 1 ]
check "the app shows it was rolled back" $?

# 5. reads: history, one app, one deployment
out=$(KANARIA_TOKEN=tok-vic "$bin" history hello)
[ $? -eq 0 ] && [ "$(grep -cE '^[0-9]+ ' <<<"$out")" = 3 ] && grep -q "^3 .*FAILURE" <<<"$out"
check "kanaria history lists the three deployments ($out)" $?
KANARIA_TOKEN=tok-vic "$bin" status hello --json | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert a["name"] == "hello" and a["repo"] == "deploy", a
assert a["rolled_back_from"] and a["last_good"], a
assert [d["id"] for d in a["deployments"]] == [3, 2, 1], a["deployments"]'
check "kanaria status APP --json prints the server's JSON" $?
[ "$(code GET /api/v1/deployments/3 tok-vic)" = 200 ] && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "FAILURE", d["status"]
st = {s["index"]: s for s in d["stages"]}
assert st[2]["name"] == "WAIT_APPROVAL" and st[2]["status"] == "FAILURE", st
assert st[2]["approvals"] == [dict(who="alice", decision="REJECT", at=st[2]["approvals"][0]["at"])]
assert any(e["type"] == "REJECTED" and e["actor"] == "alice" for e in d["events"]), d["events"]' "$tmp/body"
check "GET /api/v1/deployments/3 has its stages, approvals and events" $?

# 5b. two distinct approvers needed (the same person twice counts once); nobody approving in
# time rolls back; a webhook body over the other routes' 64 KiB is taken
approval() { # WITH
    python3 - "$tmp/upstream/hello/app.kanaria.yaml" "$1" <<'PY'
import re, sys
path, with_ = sys.argv[1], sys.argv[2]
s = open(path).read()
s = re.sub(r"(- name: WAIT_APPROVAL\n      with: ).*\n", lambda m: m.group(1) + with_ + "\n", s)
open(path, "w").write(s)
PY
}
approval "{approvers: [alice, bob], minApprovers: 2}"
service v4
git commit -qam "hello v4, two approvers"
[ "$(hook X-Kanaria-Signature-256 hook-secret-5e1f)" = 202 ]
waiting_stage 4
check "v4 waits for two approvals" $?
KANARIA_TOKEN=tok-alice "$bin" approve hello >/dev/null && KANARIA_TOKEN=tok-alice "$bin" approve hello >/dev/null
sleep 1.5
[ "$(sql "select status from stages where deployment = 4 and idx = 2")" = RUNNING ]
check "alice approving twice is one approval: still waiting" $?
KANARIA_TOKEN=tok-bob "$bin" approve hello >/dev/null
wait_for "v4 promoted" "select status from deployments where id = 4" "SUCCESS" 60
check "bob's approval is the second person's: v4 is promoted" $?

approval "{approvers: [alice], timeout: 3s}"
service v5
git commit -qam "hello v5, nobody approves"
[ "$(hook X-Kanaria-Signature-256 hook-secret-5e1f)" = 202 ]
wait_for "v5 timed out" "select status from deployments where id = 5" "FAILURE" 60
check "nobody approving within the timeout rolls v5 back" $?
reason=$(sql "select reason from deployments where id = 5")
grep -q "WAIT_APPROVAL timed out after 3s.*(rolled back)" <<<"$reason"
check "the reason says the approval timed out ($reason)" $?

python3 - "$tmp/big" "$tmp/bigsig" <<'PY'
import hashlib, hmac, sys
body = b'{"ref":"refs/heads/main","pad":"' + b"x" * (70 * 1024) + b'"}'
open(sys.argv[1], "wb").write(body)
open(sys.argv[2], "w").write(hmac.new(b"hook-secret-5e1f", body, hashlib.sha256).hexdigest())
PY
git commit -q --allow-empty -m "an empty commit that a large webhook fetches"
[ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X POST -H "X-Hub-Signature-256: sha256=$(cat "$tmp/bigsig")" \
    --data-binary @"$tmp/big" "$KANARIA_ADDR/api/v1/webhooks/git")" = 202 ]
check "a signed webhook body over 64 KiB is taken (202)" $?
wait_for "head after the large webhook" "select head from repositories where name = 'deploy'" "$(git rev-parse HEAD)" 30
check "it fetches the repository" $?

# 6. GitLab's token header; a reload brings new users
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Gitlab-Token: wrong' -d '{}' \
    "$KANARIA_ADDR/api/v1/webhooks/git")" = 401 ]
check "a GitLab webhook with a wrong token is 401" $?
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Gitlab-Token: hook-secret-5e1f' -d '{}' \
    "$KANARIA_ADDR/api/v1/webhooks/git")" = 202 ]
check "a GitLab webhook with the right token is 202" $?
[ "$(code GET /api/v1/apps tok-carol)" = 401 ]
check "carol is unknown before the reload" $?

# 7. a second repository with an app of the same name (invalid there, so never deployed)
mkdir -p "$tmp/other/hello"
printf 'apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: hello}\nspec:\n  manifests: [missing.yaml]\n' \
    >"$tmp/other/hello/app.kanaria.yaml"
command git -C "$tmp/other" init -q -b main
command git -C "$tmp/other" add -A
command git -C "$tmp/other" -c user.name=dev -c user.email=dev@example.com commit -qm other
printf '  - {name: carol, role: viewer, tokenSha256: %s}\n' "$(hash tok-carol)" >>"$tmp/kanaria.yaml"
sed -i "s|^repositories:|repositories:\n  - {name: other, url: \"file://$tmp/other\", branch: main, pollInterval: 1h}|" \
    "$tmp/kanaria.yaml"
kill -HUP "$pid"
for _ in $(seq 1 50); do [ "$(code GET /api/v1/apps tok-carol)" = 200 ] && break; sleep 0.1; done
[ "$(code GET /api/v1/apps tok-carol)" = 200 ]
check "after SIGHUP carol's token works" $?
wait_for "the other repository read" "select count(*) from apps where name = 'hello'" 2 10
check "the reload reads the second repository" $?
[ "$(code GET /api/v1/apps/hello tok-carol)" = 409 ] && grep -q "several repositories" "$tmp/body"
rc=$?
check "an app name in two repositories is 409 ($(cat "$tmp/body"))" $rc
[ "$(code GET '/api/v1/apps/hello?repo=other' tok-carol)" = 200 ] && grep -q '"error": ".\+' "$tmp/body"
check "?repo= picks one, with its validation errors" $?
out=$(KANARIA_TOKEN=tok-carol "$bin" status hello --repo deploy)
[ $? -eq 0 ] && grep -q "^repository: *deploy" <<<"$out"
check "kanaria status APP --repo NAME ($out)" $?

stop_kanaria
