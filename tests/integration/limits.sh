#!/usr/bin/env bash
# The API's limits and refusals against a real `kanaria serve` (a repository polled once an
# hour, so that only webhooks fetch it): push webhook bodies up to GitHub's 25 MB cap are taken,
# a larger one gets a readable 413, the other routes keep their 64 KiB; refused calls (401, 403)
# are logged without their token, counted in /metrics by code and route, and recorded in the
# audit log, a flood of unknown tokens only 5 times a minute.
set -uo pipefail
bin=$1
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
metrics=$(free_port)
export KANARIA_ADDR="http://127.0.0.1:$api"
printf '%s\n' "hook-secret-9c2d" >"$tmp/secret"
mkdir -p "$tmp/upstream"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
repositories:
  - name: deploy
    url: "file://$tmp/upstream"
    branch: main
    pollInterval: 1h
    webhook: {secretFile: $tmp/secret}
users:
  - {name: vic, role: viewer, tokenSha256: $(hash tok-vic)}
YAML
# body FILE SIZE: a push payload of about SIZE bytes, and its GitHub signature in FILE.sig
body() {
    python3 - "$1" "$2" <<'PY'
import hashlib, hmac, sys
path, size = sys.argv[1], int(sys.argv[2])
head = b'{"ref":"refs/heads/main","commits":[],"pad":"'
body = head + b"x" * max(0, size - len(head) - 2) + b'"}'
open(path, "wb").write(body)
open(path + ".sig", "w").write(hmac.new(b"hook-secret-9c2d", body, hashlib.sha256).hexdigest())
PY
}
# push FILE: POST it as GitHub would; prints the HTTP status, the answer in $tmp/body
push() {
    curl -s -m 60 -o "$tmp/body" -w "%{http_code}" -X POST -H "X-Hub-Signature-256: sha256=$(cat "$1.sig")" \
        -H 'Content-Type: application/json' --data-binary @"$1" "$KANARIA_ADDR/api/v1/webhooks/git"
}
# metric NAME_AND_LABELS: its value in /metrics (read as vic), or nothing
metric() {
    curl -s -m 10 -H "Authorization: Bearer tok-vic" "$KANARIA_ADDR/metrics" |
        grep -F "$1 " | awk '{print $2}'
}

echo "# no app yet" >"$tmp/upstream/README.md"
git init -q -b main
git add -A && git commit -qm "an empty repository"
start
wait_for "the first fetch" "select head != '' from repositories" "1" 30
check "kanaria fetches the repository at start" $?

# 1. webhook bodies: 100 KiB and 20 MB signed are taken, 26 MB is a readable 413
git commit -q --allow-empty -m "second"
body "$tmp/b100k" $((100 * 1024))
got=$(push "$tmp/b100k")
[ "$got" = 202 ] && grep -q '"deploy"' "$tmp/body"
check "a signed webhook body of 100 KiB is taken: 202 (got $got)" $?
[ "$got" = 202 ] && wait_for "head after the 100 KiB webhook" "select head from repositories" "$(git rev-parse HEAD)" 30
check "it fetches the repository" $?
git commit -q --allow-empty -m "third"
body "$tmp/b20m" $((20 * 1024 * 1024))
got=$(push "$tmp/b20m")
[ "$got" = 202 ]
check "a signed webhook body of 20 MB is taken: 202 (got $got)" $?
[ "$got" = 202 ] && wait_for "head after the 20 MB webhook" "select head from repositories" "$(git rev-parse HEAD)" 30
check "it fetches the repository" $?
rm -f "$tmp/b20m"
body "$tmp/b26m" $((26 * 1024 * 1024))
got=$(push "$tmp/b26m")
# h2o answers it from the Content-Length, before the body is sent (its own text, not JSON)
[ "$got" = 413 ] && grep -q "too large" "$tmp/body"
check "a webhook body of 26 MB is a 413 that says why (got $got)" $?
rm -f "$tmp/b26m"
[ "$(code POST /api/v1/apps/hello/sync tok-vic --data-binary @"$tmp/b100k")" = 413 ] &&
    grep -q "64 KiB" "$tmp/body"
check "another route's body over 64 KiB is 413" $?
[ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$KANARIA_ADDR/healthz")" = 200 ]
check "kanaria answers after the large bodies" $?

# 2. refusals: logged without the token, counted, audited (401s 5 times a minute)
for i in $(seq 1 20); do
    [ "$(code GET /api/v1/apps tok-flood-0d5e7a)" = 401 ] || echo "call $i was not 401"
done
[ "$(metric 'kanaria_api_refused_total{code="401",route="/api/v1/apps"}')" = 20 ]
check "every 401 is counted in /metrics" $?
n=$(sql "select count(*) from events where type = 'API_REFUSED' and actor = 'unauthenticated'")
[ "$n" = 5 ]
check "5 of the 20 unknown tokens are in the audit log ($n)" $?
# (grep reads a variable: grep -q ending a pipeline early fails it under pipefail)
msgs=$(sql "select message from events where type = 'API_REFUSED'")
grep -q "401 GET /api/v1/apps from 127.0.0.1:[0-9]*: unknown token" <<<"$msgs"
check "the audit event says what was refused, from where and why" $?
[ "$(grep -c "refused user=- 401 GET /api/v1/apps" "$tmp/log")" = 5 ]
check "the log has those 5 too" $?
! grep -q "tok-flood-0d5e7a" "$tmp/log" && ! grep -qi "bearer tok" "$tmp/log" &&
    ! grep -q "tok-flood" <<<"$(sql "select message from events")"
check "no token in the log or the audit log" $?
[ "$(code POST /api/v1/apps/hello/sync tok-vic)" = 403 ]
check "a viewer's sync is 403" $?
[ "$(metric 'kanaria_api_refused_total{code="403",route="/api/v1/apps/{app}/sync"}')" = 1 ] &&
    [ "$(sql "select count(*) from events where type = 'API_REFUSED' and actor = 'vic'")" = 1 ] &&
    grep -q "refused user=vic 403 POST /api/v1/apps/hello/sync from 127.0.0.1" "$tmp/log"
check "a 403 is counted, audited with its user, and logged" $?
printf '{}' >"$tmp/empty" && echo 0000000000000000000000000000000000000000000000000000000000000000 >"$tmp/empty.sig"
[ "$(push "$tmp/empty")" = 401 ] &&
    [ "$(metric 'kanaria_api_refused_total{code="401",route="/api/v1/webhooks/git"}')" = 1 ]
check "a webhook with a bad signature is counted as a 401 of its route" $?

stop_kanaria
