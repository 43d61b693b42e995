#!/usr/bin/env bash
# The kubernetes platform end to end: `kanaria serve` against the fake API server
# (tests/fakes/kube_fake.py, on a loopback port over HTTPS with a test CA, reached through a
# kubeconfig with the CA and a bearer token), Prometheus (Debian) scraping the fake's simulated
# per-Service request counters.
# The app (namespace shop): a Deployment web (image web:1, 3 replicas), a Service web and an
# HTTPRoute web whose two rules both send to the Service; its pipeline is CANARY_ROLLOUT →
# TRAFFIC_ROUTING 10% → ANALYSIS (Prometheus) → WAIT_APPROVAL → PRIMARY_ROLLOUT →
# TRAFFIC_ROUTING 100% → CANARY_CLEAN.
#  1. the first commit is a quick sync: every object applied with kanaria's labels, field
#     manager kanaria, Namespace → Service → Deployment → HTTPRoute;
#  2. a new image runs the pipeline: both rules of the route at web 90 / web-canary 10, the
#     analysis on Prometheus, `kanaria approve`, the primary rolled, 100%, the canary Deployment
#     and Service deleted; `kanaria wait` exits 0;
#  3. image web:errors (its pods answer 500): the analysis fails and kanaria rolls back, the
#     weights back on the primary before the canary is deleted (the fake's request log);
#  4. image web:crash (CrashLoopBackOff): the canary stage fails naming the pods' reason, rolled
#     back;
#  5. kill -9 at WAIT_APPROVAL, restart: the deployment resumes with no second object and no
#     new rollout of the canary, and `kanaria approve` finishes it;
#  6. a 410 Expired in the watches (the fake's `expire`): kanaria relists and the deployment
#     still completes;
#  7. drift: the route's weights edited by another field manager show in `kanaria status`; not
#     healed without onOutOfSync, put back by hand; with onOutOfSync kanaria puts them back;
#  9. an operator's Deployment adopted: its selector kept, the variant label added to its pod
#     template (one rollout), its Service left alone without a router;
#  8. every object kanaria applied validates against the official schemas
#     (tests/kube/schemas/validate.mjs; a SKIPPED line without node or the schema packages).
# kubectl, where installed, reads the fake as a second opinion (`get httproute`, `rollout
# status`), with a fresh HOME; where it is not, a SKIPPED line (a failure under CI=true).
# What the fake cannot show (a real scheduler, real traffic, admission webhooks, HTTP/2) is not
# asserted.
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../kube/kube_fake.sh"
src=$(cd "$here/../.." && pwd)
fake_py=$src/tests/fakes/kube_fake.py

# Debian's python3 where there is one: a version manager's shim in front of another python3
# costs a second a call on a loaded machine, and the checks make hundreds
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
python3() { "$py" "$@"; }
for c in "$py" prometheus openssl; do
    if [ -z "$c" ] || ! command -v "$c" >/dev/null; then
        echo "SKIPPED: ${c:-python3} is not installed (make deps)"
        [ "${CI:-}" = true ] && { echo "FAIL: CI=true: $c is part of the CI image"; exit 1; }
        exit 77
    fi
done
if [ ! -f "$fake_py" ]; then
    echo "FAIL: the fake API server $fake_py is missing"
    exit 1
fi

tmp=$(mktemp -d)
pid=
prom_pid=
stop_all() {
    [ -n "$kube_fake_pid" ] && kill "$kube_fake_pid" 2>/dev/null
    cleanup
}
trap stop_all EXIT
trap 'exit 143' TERM INT # a ctest timeout still stops the fake, Prometheus and kanaria

# need DESCRIPTION STATUS: a check the rest depends on; when it fails, the test ends here, with
# what the fake holds and the traffic it counted
need() {
    check "$1" "$2"
    [ "$2" -eq 0 ] && return 0
    if [ -n "${kube_fake_url:-}" ]; then
        echo "--- the fake's objects"
        kube_view objects 2>&1 | sed 's/^/  /'
        echo "--- the fake's traffic counters"
        kube_fake_curl "$kube_fake_url/metrics" 2>&1 | grep -v '^#' | sed 's/^/  /'
    fi
    summary
    exit 1
}
# wait_for DESCRIPTION SQL EXPECTED [SECONDS]: lib.sh's, with a deadline in seconds of the clock
# (each query starts a python3, which takes long on a loaded machine)
wait_for() {
    local got end=$((SECONDS + ${4:-30}))
    while :; do
        got=$(sql "$2" 2>/dev/null)
        [ "$got" = "$3" ] && return 0
        [ "$SECONDS" -ge "$end" ] && break
        sleep 0.2
    done
    echo "  waited ${4:-30}s for $1: expected [$3], got [$got]"
    return 1
}
# case N TITLE: a heading, so that a failure names its case
case_() { echo "--- case $1: $2 (at ${SECONDS}s)"; }

# ---- the fake API server, kubeconfig, Prometheus -------------------------------------------------

kube_fake_start "$tmp"
rc=$?
need "the fake API server answers on HTTPS with a bearer token (${kube_fake_error:-$kube_fake_url})" $rc
fake_url=$kube_fake_url
fake_token=$kube_fake_token
# the route's clients are the only ones (a Service that no route names gets no requests), so a
# canary Service gets traffic only once kanaria routes some to it, as in a cluster
kube_view control script '{"serviceRps": 0}' >>"$tmp/fake-control.log" 2>&1
rc=$?
need "the fake's simulated clients send through the route only" $rc

view() { kube_view "$@"; }
# the route's backendRefs per rule: "web:90,web-canary:10 | web:90,web-canary:10"
weights() { view weights shop web; }
# kanaria's objects of the app in the fake, on one line: "Deployment shop/web ..." (the pods the
# fake's controller makes from a template with kanaria's labels left out)
owned() { view objects --app web | grep -v '^Pod ' | tr '\n' ' ' | sed 's/ $//'; }
# a field of a stored object: field KIND NAME PYTHON-EXPRESSION-ON-o
field() {
    view get "$1" shop "$2" 2>/dev/null | python3 -c 'import json, sys
o = json.load(sys.stdin)
try:
    v = eval(sys.argv[1])
except (KeyError, IndexError, TypeError):
    v = None
print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))' "$3"
}
image_of() { field Deployment "$1" 'o["spec"]["template"]["spec"]["containers"][0]["image"]'; }
exists() { view get "$1" shop "$2" >/dev/null 2>&1; }
# kanaria's requests since the N-th: requests_since N (a variable first: `grep -q` closing a
# pipe early would fail the pipeline under pipefail)
requests_since() { local all; all=$(view requests --since "$1"); printf '%s\n' "$all"; }
# route_then_delete REQUESTS: the canary is deleted only after a route write that left it: the
# last HTTPRoute sent before the first DELETE of web-canary gives it no weight. Prints what it saw.
route_then_delete() {
    awk '$2 == "PATCH" && $3 ~ /\/httproutes\/web$/ { last = $6; n = $1 }
         $2 == "DELETE" && $3 ~ /\/web-canary$/ { found = 1
             print "route " last " (request " n "), then DELETE " $3 " (request " $1 ")"
             exit (last == "" || last ~ /web-canary:[1-9]/) }
         END { if (!found) exit 1 }' <<<"$1"
}

prom=$(free_port)
cat >"$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: kube-fake
    scheme: https
    tls_config: {ca_file: "$kube_fake_ca"}
    static_configs: [{targets: ["${kube_fake_url#https://}"]}]
YAML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address="127.0.0.1:$prom" >>"$tmp/prom.log" 2>&1 &
prom_pid=$!

# kubectl, the second opinion: a fresh HOME (its discovery cache) and the test's kubeconfig
kubectl_ok=0
if command -v kubectl >/dev/null; then
    kubectl_ok=1
    mkdir -p "$tmp/kubectl-home"
else
    echo "SKIPPED: kubectl is not installed: the fake is read back by kanaria's test helper only"
    [ "${CI:-}" = true ] && { echo "FAIL: CI=true: kubectl is part of the CI image"; failures=$((failures + 1)); }
fi
kc() { HOME=$tmp/kubectl-home kubectl --kubeconfig "$tmp/kubeconfig" --request-timeout=10s -n shop "$@"; }

# ---- kanaria.yaml and the app -------------------------------------------------------------------

api=$(free_port)
token=kn-kube-alice
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
driftInterval: 1s
users:
  - {name: alice, role: operator, tokenSha256: $(hash "$token")}
platforms:
  - name: k8s
    type: kubernetes
    kubeconfig: $tmp/kubeconfig
    qps: 50
metricsProviders:
  - {name: prom, type: prometheus, address: "http://127.0.0.1:$prom", timeout: 2s}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
export KANARIA_ADDR="http://127.0.0.1:$api" KANARIA_TOKEN=$token
export HOME=$tmp # nothing of this machine's ~/.kube is read
unset KUBECONFIG

# app IMAGE ON_OUT_OF_SYNC: the app's folder in the upstream repository
mkdir -p "$tmp/upstream/web"
app() {
    cat >"$tmp/upstream/web/namespace.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: shop}
YAML
    cat >"$tmp/upstream/web/deploy.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: $1
          ports: [{containerPort: 8080, name: http}]
YAML
    cat >"$tmp/upstream/web/service.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
YAML
    cat >"$tmp/upstream/web/route.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: gateway, namespace: shop}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs: [{name: web, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: web, port: 80}]
YAML
    cat >"$tmp/upstream/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  platform: k8s
  manifests: [namespace.yaml, service.yaml, deploy.yaml, route.yaml]
  trigger: {onOutOfSync: $2}
  kubernetes:
    namespace: shop
    workload: {kind: Deployment, name: web}
    service: web
    trafficRouting:
      method: gatewayapi
      gatewayapi: {httpRoute: web}
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: 1}
      timeout: 40s
    - name: TRAFFIC_ROUTING
      with: {canary: 10}
    - name: ANALYSIS
      with:
        duration: 9s
        metrics:
          - name: error-rate
            provider: prom
            interval: 3s
            inconclusiveLimit: 2
            query: >-
              (sum(rate(kube_fake_http_requests_total{namespace="{{namespace}}",service="{{service}}",code=~"5.."}[{{window}}])) or vector(0))
              / sum(rate(kube_fake_http_requests_total{namespace="{{namespace}}",service="{{service}}"}[{{window}}]))
            expected: {max: 0.05}
    - name: WAIT_APPROVAL
      with: {approvers: [alice]}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
# deployment_of COMMIT: the id of the deployment a commit made, waiting up to 30 s for it
deployment_of() {
    wait_for "a deployment of $1" "select count(*) > 0 from deployments where commit_id = '$1' and [trigger] = 'commit'" 1 >&2
    sql "select max(id) from deployments where commit_id = '$1' and [trigger] = 'commit'"
}
reason_of() { sql "select reason from deployments where id = $1"; }
# push IMAGE ON_OUT_OF_SYNC MESSAGE: a commit of the app; prints its deployment's id
push() {
    app "$1" "$2"
    git add -A && git commit -qm "$3"
    deployment_of "$(git rev-parse HEAD)"
}
kill9() {
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pid=
}

git init -q -b main
app web:1 false
git add -A && git commit -qm "web 1"
"$bin" validate "$tmp/upstream" -c "$tmp/kanaria.yaml" >"$tmp/validate.out" 2>&1
rc=$?
need "the app and config are valid ($(tr '\n' ' ' <"$tmp/validate.out"))" $rc

# ---- 1. quick sync ------------------------------------------------------------------------------

case_ 1 "the first commit is a quick sync"
n0=$(view count)
start
wait_for "web:1 deployed" "select strategy, status from deployments where id = 1" "QUICK_SYNC|SUCCESS" 60
rc=$?
need "the first commit is a quick sync that succeeds ($(reason_of 1))" $rc
out=$(owned)
[ "$out" = "Deployment shop/web HTTPRoute shop/web Namespace -/shop Service shop/web" ]
check "the fake holds the app's four objects, labelled kanaria.dev/app=web ($out)" $?
bad=
for o in "Namespace -/shop" "Service shop/web" "Deployment shop/web" "HTTPRoute shop/web"; do
    kind=${o%% *}
    name=${o##*/}
    ns=shop
    [ "$kind" = Namespace ] && ns=
    meta=$(view get "$kind" "$ns" "$name" | python3 -c 'import json, sys
o = json.load(sys.stdin)
m = o["metadata"]
l = m.get("labels") or {}
mgr = sorted(set(f.get("manager", "") + ":" + f.get("operation", "")
                 for f in m.get("managedFields") or [] if not f.get("subresource")))
print(l.get("kanaria.dev/app"), l.get("kanaria.dev/repository"),
      "commit" if (m.get("annotations") or {}).get("kanaria.dev/commit") else "no-commit", ",".join(mgr))')
    [ "$meta" = "web deploy commit kanaria:Apply" ] || bad="$bad $kind/$name($meta)"
done
[ -z "$bad" ]
check "each carries kanaria.dev/app, kanaria.dev/repository, the commit annotation, and only the field manager kanaria (Apply) owns it (status aside):${bad:- all do}" $?
order=$(requests_since "$n0" | awk '$2 == "PATCH" { split($3, p, "/"); print p[length(p) - 1] }' | uniq | tr '\n' ' ')
[ "$order" = "namespaces deployments services httproutes " ]
check "applied in dependency order, Namespace → Deployment, then once it is healthy Service → HTTPRoute, with server-side apply ($order)" $?
applies=$(requests_since "$n0" | awk '$2 == "PATCH"')
[ -n "$applies" ] && ! grep -v "fieldManager=kanaria" <<<"$applies" >/dev/null &&
    ! grep -v "force=true" <<<"$applies" >/dev/null
rc=$?
check "every apply is fieldManager=kanaria&force=true ($(wc -l <<<"$applies") applies)" $rc
out=$(field Deployment web 'o["spec"]["selector"]')
[ "$out" = '{"matchLabels": {"app": "web"}}' ]
check "the primary's selector is the one in Git ($out)" $?
out=$(field Deployment web 'o["spec"]["template"]["metadata"]["labels"]')
[ "$out" = '{"app": "web", "kanaria.dev/variant": "primary"}' ]
check "its pod template gains kanaria.dev/variant=primary ($out)" $?
out=$(weights)
[ "$out" = "web:1 | web:1" ] || [ "$out" = "web:100 | web:100" ]
check "the route sends all to the primary Service in both rules ($out)" $?
if [ "$kubectl_ok" = 1 ]; then
    kc rollout status deploy/web --timeout=20s >"$tmp/kc.out" 2>&1
    rc=$?
    check "kubectl rollout status deploy/web agrees ($(tail -n1 "$tmp/kc.out"))" $rc
fi
sleep 3
[ -z "$(sql "select drift from apps where name = 'web'")" ]
rc=$?
check "right after the quick sync, the app does not drift ($(sql "select drift from apps"))" $rc

# ---- 7a. drift without self-heal ----------------------------------------------------------------

case_ 7a "the route's weights edited behind kanaria's back"
# patch_route W_PRIMARY W_CANARY: both rules' backendRefs, as another field manager
patch_route() {
    local refs="{\"name\": \"web\", \"port\": 80, \"weight\": $1}"
    [ "$2" -gt 0 ] && refs="$refs, {\"name\": \"web-canary\", \"port\": 80, \"weight\": $2}"
    kube_fake_curl -o "$tmp/patch.out" -X PATCH -H "Content-Type: application/apply-patch+yaml" --data-binary @- \
        "$fake_url/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/web?fieldManager=intruder&force=true" <<JSON
{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
 "metadata": {"name": "web", "namespace": "shop"},
 "spec": {"parentRefs": [{"name": "gateway", "namespace": "shop"}], "hostnames": ["shop.example.com"],
  "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [$refs]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [$refs]}]}}
JSON
}
good_weights=$(weights)
patch_route 50 50
rc=$?
check "another field manager edits the route's weights ($(weights))" $rc
wait_for "drift" "select count(*) > 0 from events where type = 'DRIFT_DETECTED'" 1
check "the edited weights are drift" $?
out=$("$bin" status web 2>&1)
grep -q "^drift: " <<<"$out" && ! grep -q "^drift: *none" <<<"$out"
rc=$?
check "kanaria status shows it ($(grep '^drift' <<<"$out"))" $rc
sleep 3
out=$(weights)
[ "$out" = "web:50,web-canary:50 | web:50,web-canary:50" ] && [ "$(sql "select count(*) from deployments")" = 1 ]
check "without onOutOfSync nothing heals it ($out)" $?
patch_route 1 0
wait_for "drift resolved" "select count(*) > 0 from events where type = 'DRIFT_RESOLVED'" 1
rc=$?
check "the weights put back by hand resolve the drift ($(weights))" $rc

# ---- 2. a canary that passes, approved, promoted ------------------------------------------------

case_ 2 "a new image runs the pipeline"
n0=$(view count)
d2=$(push web:2 true "web 2")
waiting_stage "$d2"
rc=$?
need "web:2 runs the canary and waits for approval ($(reason_of "$d2"))" $rc
out=$(weights)
[ "$out" = "web:90,web-canary:10 | web:90,web-canary:10" ]
check "after TRAFFIC_ROUTING 10% both rules send web 90 / web-canary 10 ($out)" $?
if [ "$kubectl_ok" = 1 ]; then
    out=$(kc get httproute web -o json 2>&1 | python3 -c 'import json, sys
o = json.load(sys.stdin)
print(" | ".join(",".join("%s:%s" % (b["name"], b.get("weight", 1)) for b in r["backendRefs"]) for r in o["spec"]["rules"]))' 2>&1)
    [ "$out" = "web:90,web-canary:10 | web:90,web-canary:10" ]
    check "kubectl get httproute web reads the same ($out)" $?
fi
out="$(image_of web) $(image_of web-canary) $(field Deployment web-canary 'o["spec"]["replicas"]')"
[ "$out" = "web:1 web:2 1" ]
check "the primary runs web:1, web-canary one replica of web:2 ($out)" $?
out=$(field Deployment web-canary 'o["spec"]["selector"]["matchLabels"]')
[ "$out" = '{"app": "web", "kanaria.dev/variant": "canary"}' ]
check "web-canary selects its own pods only ($out)" $?
out="$(field Service web 'o["spec"]["selector"]') $(field Service web-canary 'o["spec"]["selector"]')"
[ "$out" = '{"app": "web", "kanaria.dev/variant": "primary"} {"app": "web", "kanaria.dev/variant": "canary"}' ]
check "Service web selects the primary's pods, web-canary the canary's: the weights are exact ($out)" $?
[ "$(sql "select status from stages where deployment = $d2 and name = 'ANALYSIS'")" = SUCCESS ]
rc=$?
check "the analysis passed on Prometheus ($(sql "select verdict, values_json from analysis_records where deployment = $d2" | tr '\n' ' '))" $rc
[ "$(sql "select count(*) from analysis_records where deployment = $d2 and verdict = 'PASS'")" -ge 1 ]
check "at least one evaluation passed on data (not only inconclusive)" $?
"$bin" approve web >"$tmp/approve.out" 2>&1
rc=$?
check "kanaria approve web ($(cat "$tmp/approve.out"))" $rc
timeout 120 "$bin" wait web --deployment "$d2" --timeout 90s >"$tmp/wait.out" 2>&1
rc=$?
need "kanaria wait web exits 0: web:2 is promoted ($(tail -n1 "$tmp/wait.out"); $(reason_of "$d2"))" $rc
out="$(image_of web) $(weights)"
[ "$out" = "web:2 web:100 | web:100" ] || [ "$out" = "web:2 web:1 | web:1" ] || [ "$out" = "web:2 web:100,web-canary:0 | web:100,web-canary:0" ]
check "the primary runs web:2 and the route sends it all ($out)" $?
exists Deployment web-canary || exists Service web-canary
[ $? -ne 0 ]
rc=$?
check "the canary Deployment and Service are deleted ($(owned))" $rc
out=$(route_then_delete "$(requests_since "$n0")")
rc=$?
check "the canary is deleted only after the route left it (${out:-no DELETE of web-canary seen})" $rc
if [ "$kubectl_ok" = 1 ]; then
    kc rollout status deploy/web --timeout=20s >"$tmp/kc.out" 2>&1
    rc=$?
    check "kubectl rollout status deploy/web: the promoted primary is rolled out ($(tail -n1 "$tmp/kc.out"))" $rc
    kc get deployment,service web-canary >"$tmp/kc.out" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && grep -q 'NotFound' "$tmp/kc.out"
    rc=$?
    check "kubectl get deployment,service web-canary: NotFound ($(tr '\n' ' ' <"$tmp/kc.out"))" $rc
fi

# ---- 3. a failed analysis rolls back in order ---------------------------------------------------

case_ 3 "web:errors fails its analysis"
n0=$(view count)
d3=$(push web:errors true "web errors")
timeout 120 "$bin" wait web --deployment "$d3" --timeout 90s >"$tmp/wait.out" 2>&1
rc=$?
[ "$rc" = 1 ]
rc=$?
check "kanaria wait web exits 1 ($rc: $(tail -n1 "$tmp/wait.out"))" $rc
reason=$(reason_of "$d3")
grep -q "stage ANALYSIS failed: .*error-rate.*(rolled back)" <<<"$reason"
check "it failed its analysis and was rolled back ($reason)" $?
out="$(image_of web) $(weights)"
[ "$out" = "web:2 web:100 | web:100" ] || [ "$out" = "web:2 web:1 | web:1" ] || [ "$out" = "web:2 web:100,web-canary:0 | web:100,web-canary:0" ]
check "web:2 is still the primary with all the traffic ($out)" $?
exists Deployment web-canary || exists Service web-canary
[ $? -ne 0 ]
rc=$?
check "the canary is gone ($(owned))" $rc
reqs=$(requests_since "$n0")
out=$(route_then_delete "$reqs")
rc=$?
[ "$rc" = 0 ] && grep -q "PATCH .*/httproutes/web .* web:90,web-canary:10|" <<<"$reqs"
check "the fake saw the route at 90/10, then back on the primary before the canary was deleted (${out:-no DELETE of web-canary seen})" $?

# ---- 4. a canary whose pods crash ---------------------------------------------------------------

case_ 4 "web:crash fails the canary with the pods' reason"
d4=$(push web:crash true "web crash")
timeout 120 "$bin" wait web --deployment "$d4" --timeout 90s >"$tmp/wait.out" 2>&1
rc=$?
[ "$rc" = 1 ]
rc=$?
check "kanaria wait web exits 1 ($rc: $(tail -n1 "$tmp/wait.out"))" $rc
reason=$(reason_of "$d4")
grep -q "stage CANARY_ROLLOUT failed: .*CrashLoopBackOff.*(rolled back)" <<<"$reason"
check "CANARY_ROLLOUT fails naming the pods' reason, and is rolled back ($reason)" $?
out="$(image_of web) $(weights)"
exists Deployment web-canary || exists Service web-canary
[ $? -ne 0 ] && grep -q "^web:2 " <<<"$out"
rc=$?
check "the canary is gone and web:2 still serves ($out; $(owned))" $rc

# ---- 5. kill -9 at WAIT_APPROVAL, restart -------------------------------------------------------

case_ 5 "kill -9 mid-canary, then a restart"
d5=$(push web:3 true "web 3")
waiting_stage "$d5"
rc=$?
need "web:3 waits for approval ($(reason_of "$d5"))" $rc
before=$(owned)
gen=$(field Deployment web-canary 'o["metadata"]["generation"]')
kill9
start
sleep 3
wait_for "still waiting" "select status from deployments where id = $d5" "RUNNING"
check "the restarted kanaria resumes the deployment" $?
waiting_stage "$d5"
check "at WAIT_APPROVAL again" $?
out=$(owned)
[ "$out" = "$before" ] && [ "$out" = "Deployment shop/web Deployment shop/web-canary HTTPRoute shop/web Namespace -/shop Service shop/web Service shop/web-canary" ]
check "no second object after the restart ($out)" $?
out=$(field Deployment web-canary 'o["metadata"]["generation"]')
[ "$out" = "$gen" ]
check "the canary is not rolled again (generation $gen → $out)" $?
[ "$(weights)" = "web:90,web-canary:10 | web:90,web-canary:10" ]
rc=$?
check "the weights are as they were ($(weights))" $rc
"$bin" approve web >"$tmp/approve.out" 2>&1
rc=$?
check "kanaria approve web after the restart ($(cat "$tmp/approve.out"))" $rc
timeout 120 "$bin" wait web --deployment "$d5" --timeout 90s >"$tmp/wait.out" 2>&1
rc=$?
check "web:3 is promoted ($(tail -n1 "$tmp/wait.out"); $(reason_of "$d5"))" $rc
[ "$(image_of web)" = web:3 ] && ! exists Deployment web-canary
rc=$?
check "web:3 is the primary, the canary deleted ($(image_of web); $(owned))" $rc

# ---- 6. a 410 in the watches --------------------------------------------------------------------

case_ 6 "a 410 Expired during a watch"
d6=$(push web:4 true "web 4")
wait_for "web:4's canary" "select count(*) from stages where deployment = $d6 and status = 'RUNNING'" 1 60
n1=$(view count)
view control expire '{"current": true}' >>"$tmp/fake-control.log" 2>&1
rc=$?
check "the fake ends the open watches with an in-stream ERROR 410 Expired" $rc
waiting_stage "$d6"
rc=$?
need "web:4 reaches WAIT_APPROVAL after the 410 ($(reason_of "$d6"))" $rc
lists=$(requests_since "$n1" | awk '$2 == "GET" && $4 !~ /watch=/ && $3 ~ /\/(deployments|pods|services|httproutes)$/' | wc -l)
[ "$lists" -ge 1 ]
check "kanaria listed again after the in-stream 410 ($lists lists)" $?
n1=$(view count)
view control expire '{"next": 1, "mode": "http"}' >>"$tmp/fake-control.log" 2>&1
rc=$?
check "the fake answers the next watch with an HTTP 410" $rc
"$bin" approve web >"$tmp/approve.out" 2>&1
timeout 120 "$bin" wait web --deployment "$d6" --timeout 90s >"$tmp/wait.out" 2>&1
rc=$?
check "web:4 completes through the 410s ($(tail -n1 "$tmp/wait.out"); $(reason_of "$d6"))" $rc
reqs=$(requests_since "$n1")
gone=$(awk '$5 == 410 { print $3; exit }' <<<"$reqs")
after=$(awk -v p="$gone" 'seen && $3 == p { print $4; exit } $5 == 410 { seen = 1 }' <<<"$reqs")
[ -n "$gone" ] && [ -n "$after" ] && ! grep -q "watch=" <<<"$after"
check "after the watch of ${gone:-(none)} was answered 410, kanaria listed it again before watching (next: ${after:-none})" $?
[ "$(image_of web)" = web:4 ]
rc=$?
check "web:4 is the primary ($(image_of web))" $rc

# ---- 7b. self-heal ------------------------------------------------------------------------------

case_ 7b "self-heal puts the weights back"
healed=$(sql "select count(*) from deployments where [trigger] = 'self-heal' and status = 'SUCCESS'")
good=$(weights)
patch_route 30 70
wait_for "self-heal" "select count(*) > $healed from deployments where [trigger] = 'self-heal' and status = 'SUCCESS'" 1 60
rc=$?
check "weights edited by hand are healed ($(sql "select group_concat(message, ' / ') from events where type = 'DRIFT_DETECTED'"))" $rc
out=$(weights)
[ "$out" = "$good" ]
check "self-heal puts the weights back ($out, was $good)" $?

# ---- 9. adopting a Deployment that runs already -------------------------------------------------

case_ 9 "an existing Deployment adopted (no router)"
# apply_as MANAGER PATH JSON: server-side apply by another client, as an operator's kubectl would
apply_as() {
    kube_fake_curl -o /dev/null -X PATCH -H "Content-Type: application/apply-patch+yaml" \
        --data-binary "$3" "$fake_url$2?fieldManager=$1&force=true"
}
legacy_deploy='{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "legacy", "namespace": "legacy"},
 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "legacy"}},
  "template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {"containers": [{"name": "legacy", "image": "legacy:1"}]}}}}'
legacy_svc='{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy", "namespace": "legacy"},
 "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]}}'
apply_as operator /api/v1/namespaces/legacy '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}}' &&
    apply_as operator /api/v1/namespaces/legacy/services/legacy "$legacy_svc" &&
    apply_as operator /apis/apps/v1/namespaces/legacy/deployments/legacy "$legacy_deploy"
rc=$?
need "an operator's Deployment legacy and its Service run before kanaria knows them" $rc
lfield() { view get "$1" legacy "$2" 2>/dev/null | python3 -c 'import json, sys
o = json.load(sys.stdin)
print(json.dumps(eval(sys.argv[1]), sort_keys=True))' "$3"; }
for _ in $(seq 1 50); do
    [ "$(lfield Deployment legacy 'o.get("status", {}).get("availableReplicas")')" = 2 ] && break
    sleep 0.2
done
gen0=$(lfield Deployment legacy 'o["metadata"]["generation"]')
mkdir -p "$tmp/upstream/legacy"
printf '%s\n---\n%s\n' "$legacy_deploy" "$legacy_svc" >"$tmp/upstream/legacy/manifests.yaml"
cat >"$tmp/upstream/legacy/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: legacy}
spec:
  platform: k8s
  manifests: [manifests.yaml]
  kubernetes: {namespace: legacy}
YAML
git add -A && git commit -qm "legacy, now deployed by kanaria"
d9=$(deployment_of "$(git rev-parse HEAD)")
wait_for "legacy adopted" "select status from deployments where id = $d9" SUCCESS 60
rc=$?
need "kanaria's first deployment of legacy adopts it ($(reason_of "$d9"))" $rc
out=$(lfield Deployment legacy 'o["spec"]["selector"]')
[ "$out" = '{"matchLabels": {"app": "legacy"}}' ]
check "its selector is as the operator made it ($out)" $?
out=$(lfield Deployment legacy 'o["spec"]["template"]["metadata"]["labels"]')
[ "$out" = '{"app": "legacy", "kanaria.dev/variant": "primary"}' ]
check "its pod template gains kanaria.dev/variant=primary ($out)" $?
out=$(lfield Deployment legacy 'o["metadata"]["generation"]')
[ -n "$gen0" ] && [ "$out" = $((gen0 + 1)) ]
check "which rolls it once (generation $gen0 → $out)" $?
out=$(lfield Service legacy 'o["spec"]["selector"]')
[ "$out" = '{"app": "legacy"}' ]
check "without a router its Service's selector is left as it was ($out)" $?
out=$(lfield Deployment legacy 'sorted(set(f["manager"] for f in o["metadata"]["managedFields"] if not f.get("subresource")))')
grep -q '"kanaria"' <<<"$out"
check "kanaria is now a field manager of it ($out)" $?

# ---- 8. the official schemas --------------------------------------------------------------------

case_ 8 "every object kanaria applied validates against the official schemas"
validate_mjs=$src/tests/kube/schemas/validate.mjs
# the packages ctest kube_schemas installs (npm ci) into the build folder
schemas=${KANARIA_KUBE_SCHEMAS:-$(cd "$(dirname "$bin")" && pwd)/kube-schemas}
n=$(view sent "$tmp/sent")
if ! command -v node >/dev/null; then
    echo "SKIPPED: schema validation: node is not installed (tests/deps.sh installs nodejs)"
    [ "${CI:-}" = true ] && { echo "FAIL: CI=true: node is part of the CI image"; failures=$((failures + 1)); }
elif [ "$n" -gt 0 ]; then
    KANARIA_KUBE_SCHEMAS=$schemas timeout 120 node "$validate_mjs" "$tmp"/sent/*.json >"$tmp/schemas.out" 2>&1
    rc=$?
    if [ "$rc" = 2 ]; then
        echo "SKIPPED: schema validation: the npm schema packages are not installed in $schemas (ctest kube_schemas installs them)"
        [ "${CI:-}" = true ] && { echo "FAIL: CI=true: the schema packages must be there"; failures=$((failures + 1)); }
    else
        check "the $n objects kanaria applied validate ($(grep -v '^ok' "$tmp/schemas.out" | head -n 5 | tr '\n' ' '))" $rc
    fi
fi
ls "$tmp"/sent/*-Deployment.json "$tmp"/sent/*-HTTPRoute.json "$tmp"/sent/*-Service.json >/dev/null 2>&1
check "the objects applied include Deployments, Services and HTTPRoutes ($n objects)" $?

stop_kanaria_kube() {
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && { echo "  kanaria did not stop within 20s of SIGTERM"; kill -9 "$pid"; }
    wait "$pid"
    check "kanaria exits 0 on SIGTERM" $?
    pid=
}
stop_kanaria_kube
! grep -qF "$fake_token" "$tmp/log"
check "the bearer token is not in kanaria's log" $?
! grep -rqF "$fake_token" "$tmp/data"
check "nor anywhere under its dataDir (the store included)" $?
summary
