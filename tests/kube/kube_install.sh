#!/usr/bin/env bash
# The manifests that install kanaria in a cluster (examples/kubernetes/install/*.yaml):
#  - every object passes the API's schemas (tests/kube/schemas/validate.mjs, the npm packages
#    pinned in package-lock.json, installed with `npm ci` into MODULES_DIR when missing);
#  - the ConfigMap's kanaria.yaml is a valid config (`kanaria validate -c`) with a kubernetes
#    platform that has no kubeconfig (in cluster) and leaderElection;
#  - the RBAC grants leases only get, create and update, and only in kanaria's namespace;
#  - the probes ask for /healthz on the port the config listens on, which kanaria answers.
#
#   kube_install.sh KANARIA YAML2JSON SOURCE_DIR MODULES_DIR
#
# No node or npm: the schema part is SKIPPED (exit 77 at the end), a failure when CI=true.
set -uo pipefail
bin=$1
yaml2json=$2
src=$3
modules=${KANARIA_KUBE_SCHEMAS:-$4}
install=$src/examples/kubernetes/install
schemas=$src/tests/kube/schemas
failures=0
passed=0
skipped=

check() {
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: $1"
        failures=$((failures + 1))
    fi
}
tmp=$(mktemp -d)
kpid=
trap '[ -n "$kpid" ] && kill "$kpid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$yaml2json" "$tmp" "$install"/*.yaml
check "the install manifests are YAML" $?
count=$(find "$tmp" -name '*.json' | wc -l)
kinds=$(cat "$tmp"/*.json | python3 -c 'import json, sys
d = json.JSONDecoder()
s = sys.stdin.read().strip()
kinds = []
while s:
    o, n = d.raw_decode(s)
    kinds.append(o["kind"])
    s = s[n:].strip()
print(" ".join(sorted(kinds)))')
[ "$kinds" = "ClusterRole ClusterRoleBinding ConfigMap Namespace Role RoleBinding Service ServiceAccount StatefulSet" ]
check "the install manifests hold the expected kinds ($kinds)" $?

# an object's field: get KIND NAME PYTHON-EXPRESSION-ON-o
get() {
    python3 - "$tmp" "$1" "$2" "$3" <<'PY'
import glob, json, sys
d, kind, name, expr = sys.argv[1:]
for f in sorted(glob.glob(d + "/*.json")):
    o = json.load(open(f))
    if o.get("kind") == kind and o["metadata"]["name"] == name:
        v = eval(expr)
        print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        break
PY
}

# ---- the config --------------------------------------------------------------------------------
get ConfigMap kanaria 'o["data"]["kanaria.yaml"]' >"$tmp/kanaria.yaml"
sed -i "s|/var/lib/kanaria|$tmp/data|" "$tmp/kanaria.yaml"
mkdir -p "$tmp/apps"
out=$("$bin" validate "$tmp/apps" -c "$tmp/kanaria.yaml" 2>&1 | head -n 1)
[ "$out" = "ok $tmp/kanaria.yaml" ]
check "the ConfigMap's kanaria.yaml is valid ($out)" $?
grep -q '^ *type: kubernetes' "$tmp/kanaria.yaml" && ! grep -q 'kubeconfig:' "$tmp/kanaria.yaml" &&
    grep -q '^ *leaderElection:' "$tmp/kanaria.yaml"
check "its kubernetes platform runs in cluster (no kubeconfig) with leaderElection" $?

# ---- RBAC ---------------------------------------------------------------------------------------
out=$(get Role kanaria-leader-election '[o["metadata"]["namespace"], o["rules"]]')
[ "$out" = '["kanaria", [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]]' ]
check "the Role grants leases get, create, update in namespace kanaria only ($out)" $?
out=$(get ClusterRole kanaria '[v for r in o["rules"] for v in r["verbs"] if v in ("*", "update", "escalate", "bind", "impersonate")] + [g for r in o["rules"] for g in r.get("apiGroups", []) if g == "*"] + [x for r in o["rules"] for x in r.get("resources", []) if x in ("*", "leases")]')
[ "$out" = "[]" ]
check "the ClusterRole has no wildcard, update, escalation or leases ($out)" $?
out=$(get ClusterRoleBinding kanaria '[o["roleRef"]["name"], o["subjects"]]')
[ "$out" = '["kanaria", [{"kind": "ServiceAccount", "name": "kanaria", "namespace": "kanaria"}]]' ]
check "the ClusterRoleBinding names the ServiceAccount ($out)" $?

# ---- the StatefulSet ----------------------------------------------------------------------------
out=$(get StatefulSet kanaria '[o["spec"]["replicas"], o["spec"]["template"]["spec"]["serviceAccountName"], o["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], o["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], [m["mountPath"] for m in o["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] if m["name"] == "data"]]')
[ "$out" = '[1, "kanaria", true, "data", ["/var/lib/kanaria"]]' ]
check "one replica, the ServiceAccount, non-root, a volume claim for dataDir ($out)" $?
out=$(get StatefulSet kanaria '[c[p]["httpGet"]["path"] for c in o["spec"]["template"]["spec"]["containers"] for p in ("readinessProbe", "livenessProbe")]')
[ "$out" = '["/healthz", "/healthz"]' ]
check "readiness and liveness probes on /healthz ($out)" $?
out=$(get StatefulSet kanaria '[p["containerPort"] for p in o["spec"]["template"]["spec"]["containers"][0]["ports"]]')
grep -q '^listen: ":7070"' "$tmp/kanaria.yaml" && [ "$out" = "[7070]" ]
check "the container port is the config's listen port ($out)" $?

# /healthz answers on a kanaria serve of that config (listen moved to a free loopback port)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
cat >"$tmp/serve.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$port
YAML
"$bin" serve -c "$tmp/serve.yaml" >"$tmp/serve.log" 2>&1 &
kpid=$!
ok=1
for _ in $(seq 1 50); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then ok=0; break; fi
    sleep 0.2
done
check "kanaria serve answers GET /healthz, the probes' path, without a token" $ok
kill "$kpid" 2>/dev/null
wait "$kpid" 2>/dev/null
kpid=

# ---- the API's schemas --------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    skipped="node or npm not found (tests/deps.sh installs nodejs and npm)"
else
    mkdir -p "$modules"
    if [ ! -d "$modules/node_modules/kubernetes-models" ] ||
        ! cmp -s "$schemas/package-lock.json" "$modules/package-lock.json"; then
        cp "$schemas/package.json" "$schemas/package-lock.json" "$modules/"
        if ! (cd "$modules" && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
            rm -f "$modules/package-lock.json"
            echo "FAIL: npm ci of the schema packages failed"
            exit 1
        fi
    fi
    out=$(KANARIA_KUBE_SCHEMAS=$modules timeout 60 node "$schemas/validate.mjs" "$tmp"/*.json)
    rc=$?
    echo "$out" | sed "s|$tmp/||"
    [ $rc -eq 0 ] && [ "$(echo "$out" | grep -c '^ok ')" -eq "$count" ]
    check "every install manifest passes the API's schemas (rc $rc)" $?
    # and the check can fail: a StatefulSet without its selector
    python3 - "$tmp" <<'PY'
import glob, json, sys
for f in glob.glob(sys.argv[1] + "/*.json"):
    o = json.load(open(f))
    if o.get("kind") == "StatefulSet":
        del o["spec"]["selector"]
        json.dump(o, open(sys.argv[1] + "/bad.json", "w"))
PY
    KANARIA_KUBE_SCHEMAS=$modules timeout 60 node "$schemas/validate.mjs" "$tmp/bad.json" >/dev/null
    [ $? -eq 1 ]
    check "a StatefulSet without its selector fails them" $?
fi

echo "kube_install: $passed passed, $failures failed"
[ "$failures" -eq 0 ] || exit 1
if [ -n "$skipped" ]; then
    echo "SKIPPED: $skipped"
    [ "${CI:-}" = true ] && { echo "FAIL: CI=true and $skipped"; exit 1; }
    exit 77
fi
exit 0
