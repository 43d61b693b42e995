#!/usr/bin/env bash
# The Kubernetes demo: a canary of a Deployment behind a Gateway API HTTPRoute, on kanaria's
# fake API server (no cluster is needed, nor installed).
#
#     examples/kubernetes/demo.sh [--binary-dir DIR]
#
# DIR holds the built kanaria (default: build). It needs git, curl, python3 and Prometheus
# (Debian's `prometheus`); kubectl, when installed, shows the objects as a real client reads
# them. Without python3 it says so and exits 77. Everything happens in a new temporary folder:
# the fake API server (tests/fakes/kube_fake.py) on a loopback port, a kubeconfig pointing at
# it, Prometheus scraping the fake's simulated request counters, a Git remote holding the app
# examples/kubernetes/demo/repo/shop/, and `kanaria serve`. Then:
#   1. the first commit is applied with server-side apply (a quick sync);
#   2. a new image runs as a canary: web-canary and its Service, 90/10 in both rules of the
#      HTTPRoute, the error rate read from Prometheus, an approval, the promotion;
#   3. an image whose pods answer 500: the analysis fails and kanaria rolls back, the weights
#      back on the primary before the canary is deleted;
#   4. an image whose pods crash: the canary fails with the pods' reason (CrashLoopBackOff).
# The fake runs no container and routes no request: it moves the Deployments' status as a
# cluster would, and counts the requests each Service would get at the route's weights.
# Exit 0 when all of that happened as told, 1 when a step did not (its logs are kept), 2 on a
# usage error, 77 when python3 is missing.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
bindir=
while [ $# -gt 0 ]; do
    case $1 in
    --binary-dir) bindir=${2:?--binary-dir needs a folder}; shift 2 ;;
    -h | --help) sed -n '2,23s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo-kubernetes: unknown argument '$1' (usage: demo.sh [--binary-dir DIR])" >&2; exit 2 ;;
    esac
done
# Debian's python3 where there is one (a version manager's shim in front of another is slow)
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
python3() { "$py" "$@"; }
if [ -z "$py" ]; then
    echo "demo-kubernetes: SKIPPED: python3 is not installed: the fake API server is a Python program."
    [ "${CI:-}" = true ] && exit 1
    exit 77
fi
bindir=$(cd "${bindir:-$src/build}" 2>/dev/null && pwd) || {
    echo "demo-kubernetes: no build folder; run 'make demo-kubernetes', or pass --binary-dir DIR" >&2
    exit 2
}
if [ ! -x "$bindir/kanaria" ]; then
    echo "demo-kubernetes: $bindir/kanaria is missing; run 'make demo-kubernetes' (it builds it)" >&2
    exit 2
fi
for c in git curl openssl prometheus sha256sum; do
    if ! command -v "$c" >/dev/null; then
        echo "demo-kubernetes: '$c' is not installed; run 'make deps'" >&2
        exit 2
    fi
done
kanaria() { "$bindir/kanaria" "$@"; } # the client commands (serve runs as its own process)

# ---- narration ---------------------------------------------------------------------------------

t0=$(date +%s)
bold=
plain=
if [ -t 1 ]; then
    bold=$(printf '\033[1m')
    plain=$(printf '\033[0m')
fi
say() { printf '%s\n' "$*"; }
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '    $ %s\n' "$*"; }
indent() { sed 's/^/      /'; }
fail() {
    printf '\n%sdemo-kubernetes: %s%s\n' "$bold" "$*" "$plain" >&2
    failed=1
    exit 1
}

# ---- the temporary folder, and stopping what runs in it ----------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kanaria-demo-kubernetes.XXXXXX")
failed=0
kanaria_pid=
fake_pid=
prom_pid=
stop() { # PID: SIGTERM, then up to 5 seconds for it to go
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}
finish() {
    local rc=$?
    stop "$kanaria_pid"
    stop "$prom_pid"
    stop "$fake_pid"
    if [ "$rc" -ne 0 ] || [ "$failed" = 1 ]; then
        if [ -f "$tmp/kanaria.log" ]; then
            say "--- the last lines of kanaria's log ($tmp/kanaria.log)"
            grep -v 'level=debug' "$tmp/kanaria.log" | tail -n 30 || true
        fi
        say "demo-kubernetes: stopped; its logs are kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---- the fake API server, kubeconfig, Prometheus -----------------------------------------------

step "Setting up in $tmp"
say "    No Kubernetes cluster runs here: kanaria talks to its fake API server, a Python program"
say "    that answers as kube-apiserver does (discovery, server-side apply, list and watch,"
say "    Status errors) and plays the cluster's controllers: it moves each Deployment's status"
say "    as its pods would start (or crash), and counts the requests each Service would receive"
say "    at the HTTPRoute's weights, as /metrics for Prometheus. It runs no container and routes"
say "    no real request."
. "$src/tests/kube/kube_fake.sh"
kube_fake_start "$tmp" || fail "$kube_fake_error"
fake_pid=$kube_fake_pid
# the route's clients are the only ones: a Service gets requests once a route sends it some
kube_view control script '{"serviceRps": 0}' >/dev/null || fail "the fake's script could not be set"
prom_port=$(free_port)
sed -e "s|@FAKE_ADDR@|${kube_fake_url#https://}|" -e "s|@CA_FILE@|$kube_fake_ca|" "$here/demo/prometheus.yml" >"$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
say "    fake API server  $kube_fake_url (HTTPS with a test CA; bearer token; kubeconfig"
say "                     $tmp/kubeconfig)"
say "    Prometheus       http://127.0.0.1:$prom_port, scraping the fake's /metrics every second"

view() { kube_view "$@"; }
kubectl_ok=0
if command -v kubectl >/dev/null; then
    kubectl_ok=1
    mkdir -p "$tmp/kubectl-home"
fi
kc() { HOME=$tmp/kubectl-home kubectl --kubeconfig "$tmp/kubeconfig" --request-timeout=10s -n shop "$@"; }
objects() { # the app's objects, as kubectl (or, without it, the fake) lists them
    if [ "$kubectl_ok" = 1 ]; then
        show "kubectl get deployments,services,httproutes -l kanaria.dev/app=storefront"
        kc get deployments,services,httproutes -l kanaria.dev/app=storefront \
            -o custom-columns='KIND:.kind,NAME:.metadata.name,VARIANT:.metadata.labels.kanaria\.dev/variant,IMAGE:.spec.template.spec.containers[0].image' \
            2>&1 | indent
    else
        view objects --app storefront | indent
    fi
}
route() { # the HTTPRoute's backendRefs, rule by rule
    if [ "$kubectl_ok" = 1 ]; then
        show "kubectl get httproute web -o json   # its spec.rules[].backendRefs:"
        kc get httproute web -o json 2>&1 | python3 -c 'import json, sys
for i, r in enumerate(json.load(sys.stdin)["spec"]["rules"]):
    print("rule %d (%s): %s" % (i + 1, r["matches"][0]["path"]["value"],
          ", ".join("%s %s" % (b["name"], b.get("weight", 1)) for b in r["backendRefs"])))' | indent
    else
        view weights shop web | tr '|' '\n' | sed 's/^ *//' | indent
    fi
}
traffic() { # requests per Service in the last 10 seconds, as Prometheus has them
    curl -sf "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode \
        'query=sum by (service, code) (increase(kube_fake_http_requests_total{namespace="shop"}[10s]))' |
        python3 -c 'import json, sys
rows = json.load(sys.stdin)["data"]["result"]
for r in sorted(rows, key=lambda r: (r["metric"].get("service", ""), r["metric"].get("code", ""))):
    if float(r["value"][1]) >= 0.5:
        print("Service %-12s %s  %5.0f requests" % (r["metric"].get("service"), r["metric"].get("code"), float(r["value"][1])))' | indent || true
}

# ---- the Git remote and kanaria ------------------------------------------------------------------

api_port=$(free_port)
export KANARIA_ADDR="http://127.0.0.1:$api_port"
KANARIA_TOKEN="kn-demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export KANARIA_TOKEN
sed -e "s|@DATA_DIR@|$tmp/data|" -e "s|@REPO_DIR@|$tmp/shop.git|" -e "s|@API_PORT@|$api_port|" \
    -e "s|@KUBECONFIG@|$tmp/kubeconfig|" -e "s|@PROM_PORT@|$prom_port|" \
    -e "s|@TOKEN_SHA256@|$(printf %s "$KANARIA_TOKEN" | sha256sum | cut -d' ' -f1)|" \
    "$here/demo/kanaria.yaml" >"$tmp/kanaria.yaml"

git init -q --bare -b main "$tmp/shop.git"
git init -q -b main "$tmp/work"
git -C "$tmp/work" remote add origin "$tmp/shop.git"
cp -r "$here/demo/repo/shop" "$tmp/work/"
app_dir=$tmp/work/shop
dev_git() {
    git -C "$tmp/work" -c user.name="Dev Eloper" -c user.email=dev@example.com \
        -c commit.gpgsign=false "$@"
}
commit_and_push() { # MESSAGE IMAGE_TAG: prints the commit
    sed -i "s|image: registry.example.com/shop/web:.*|image: registry.example.com/shop/web:$2|" "$app_dir/deploy.yaml"
    dev_git commit -qam "$1"
    dev_git push -q origin main
    dev_git rev-parse HEAD
}
cp "$src/examples/quickstart/watch.py" "$tmp/watch.py"
export T0=$t0
follow() { python3 "$tmp/watch.py" storefront "$1" "$2" "$3"; } # COMMIT EXPECT SECONDS

export HOME=$tmp # nothing of this machine's ~/.kube is read
unset KUBECONFIG
"$bindir/kanaria" serve -c "$tmp/kanaria.yaml" >"$tmp/kanaria.log" 2>&1 &
kanaria_pid=$!
for _ in $(seq 1 150); do
    curl -sf -o /dev/null "$KANARIA_ADDR/healthz" && break
    kill -0 "$kanaria_pid" 2>/dev/null || fail "kanaria exited at its start"
    sleep 0.2
done
curl -sf -o /dev/null "$KANARIA_ADDR/healthz" || fail "kanaria did not answer within 30s"
say "    kanaria serve    API on $KANARIA_ADDR, user 'demo' (approver), log in kanaria.log"
say "    Git remote       file://$tmp/shop.git (the app is in shop/)"

# ---- 1. the first commit -----------------------------------------------------------------------

step "1/4  The first commit: the app's manifests applied with server-side apply"
say "    shop/ holds the app storefront in plain Kubernetes YAML: a Namespace, a Deployment web"
say "    (3 replicas), a Service web and an HTTPRoute web with two rules that send to it. The first"
say "    deployment is a quick sync: each object applied (fieldManager=kanaria), Namespace first,"
say "    labelled kanaria.dev/app=storefront."
dev_git add -A
dev_git commit -qm "shop: web 1.0"
dev_git push -q origin main
show 'git commit -m "shop: web 1.0" && git push'
follow "$(dev_git rev-parse HEAD)" SUCCESS 60 || fail "web 1.0 was not deployed"
objects

# ---- 2. a healthy canary -----------------------------------------------------------------------

step "2/4  web 1.1: a canary that passes the analysis, then a person approves it"
commit=$(commit_and_push "shop: web 1.1" 1.1)
show 'git commit -am "shop: web 1.1" && git push'
follow "$commit" WAIT_APPROVAL 120 || fail "web 1.1 did not reach WAIT_APPROVAL"
say "    web-canary runs one pod of 1.1 beside the primary, behind its own Service; the primary"
say "    Service selects kanaria.dev/variant=primary, so the weights are exact:"
objects
say "    Both rules of the HTTPRoute now send 10% to web-canary:"
route
say "    The requests each Service received in the last 10 seconds (Prometheus):"
traffic
show "KANARIA_TOKEN=kn-demo-… kanaria approve storefront"
kanaria approve storefront | indent || fail "the approval was refused"
follow "$commit" SUCCESS 90 || fail "web 1.1 was not promoted"
say "    1.1 is the primary; web-canary and its Service are deleted:"
objects
route

# ---- 3. a canary whose pods answer 500 ---------------------------------------------------------

step "3/4  web 1.2-errors: its pods answer 500; the analysis fails and kanaria rolls back"
before=$(view count)
commit=$(commit_and_push "shop: web 1.2-errors" 1.2-errors)
show 'git commit -am "shop: web 1.2-errors" && git push'
follow "$commit" FAILURE 120 || fail "web 1.2-errors was not rolled back"
reason=$(kanaria history storefront --json | python3 -c 'import json, sys
print(next(d["reason"] for d in json.load(sys.stdin)["deployments"] if d["commit"] == sys.argv[1]))' "$commit")
say "    Why, as kanaria recorded it:"
say "      $reason"
grep -q "analysis" <<<"$reason" || fail "web 1.2-errors was rolled back, but not by the analysis"
say "    kanaria's writes to the route and its deletes, as the fake API server logged them: the"
say "    route at 90/10, back on the primary, and only then the canary deleted:"
writes=$(view requests --since "$before" |
    awk '($2 == "PATCH" && $3 ~ /httproutes/) || ($2 == "DELETE" && $5 != 404) { print $2, $3, $6 }' |
    sed -e 's|/apis/gateway.networking.k8s.io/v1/namespaces/shop/||' -e 's|/apis/apps/v1/namespaces/shop/||' \
        -e 's|/api/v1/namespaces/shop/||')
sed 's/|/ | /' <<<"$writes" | indent
# the last route written before the first delete gives the canary no weight
awk '$1 == "PATCH" { last = $3 } $1 == "DELETE" { found = 1; exit (last == "" || last ~ /web-canary:[1-9]/) }
     END { if (!found) exit 1 }' <<<"$writes" || fail "the canary was deleted before the route left it"
route

# ---- 4. a canary whose pods crash --------------------------------------------------------------

step "4/4  web 1.3-crash: its pods crash; the canary stage fails with the pods' reason"
commit=$(commit_and_push "shop: web 1.3-crash" 1.3-crash)
show 'git commit -am "shop: web 1.3-crash" && git push'
follow "$commit" FAILURE 120 || fail "web 1.3-crash was not rolled back"
reason=$(kanaria history storefront --json | python3 -c 'import json, sys
print(next(d["reason"] for d in json.load(sys.stdin)["deployments"] if d["commit"] == sys.argv[1]))' "$commit")
say "    Why, as kanaria recorded it:"
say "      $reason"
grep -q "CrashLoopBackOff" <<<"$reason" || fail "web 1.3-crash failed, but its reason does not name CrashLoopBackOff"
objects
show "kanaria history storefront"
kanaria history storefront | indent

step "Done in $(($(date +%s) - t0))s: web 1.0 applied, 1.1 canaried, approved and promoted, 1.2-errors and 1.3-crash rolled back"
