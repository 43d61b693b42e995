#!/usr/bin/env bash
# kanaria's Deployment health (kn_kube_deployment_health, render.c) against the real `kubectl
# rollout status` on the same Deployment states: each state is set on kanaria's fake API server
# (tests/fakes/kube_fake.py, /_fake/status), then kubectl judges it (--watch=false: its words,
# exit 1 on a failure) and kanaria judges the object read back (render_dump --health). They must
# say the same words and agree on done / failed / waiting; the one documented difference
# (kanaria also fails on ReplicaFailure=True, which kubectl does not read) is checked as such.
# Then kubectl watching (`rollout status --timeout`) and kanaria agree on how a scripted
# sequence ends.
#
#   rollout_agree.sh RENDER_DUMP
#
# Needs python3, openssl, curl and kubectl: SKIPPED (exit 77) without one, a failure when CI=true.
set -uo pipefail

dump=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

skip() {
    echo "SKIPPED: $*"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: CI=true and $*"
        exit 1
    fi
    exit 77
}

for tool in python3 openssl curl kubectl; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool not found"
done
[ -f "$here/../fakes/kube_fake.py" ] || skip "tests/fakes/kube_fake.py not there"

# shellcheck source=tests/kube/kube_fake.sh
. "$here/kube_fake.sh"

tmp=$(mktemp -d)
cleanup() {
    if [ -n "$kube_fake_pid" ]; then
        kill "$kube_fake_pid" 2>/dev/null
        wait "$kube_fake_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export HOME=$tmp/home # kubectl's discovery cache, fresh
mkdir -p "$HOME"

kube_fake_start "$tmp" || { echo "FAIL: $kube_fake_error"; exit 1; }
kc() { timeout 30 kubectl --kubeconfig "$tmp/kubeconfig" "$@"; }
path=/apis/apps/v1/namespaces/default/deployments/web
fail=0

kube_fake_curl -X PATCH -H 'Content-Type: application/apply-patch+yaml' \
    "$kube_fake_url$path?fieldManager=kanaria&force=true" -o /dev/null --data-binary @- <<'JSON' ||
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
 "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
  "template": {"metadata": {"labels": {"app": "web"}},
   "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}
JSON
    { echo "FAIL: the Deployment could not be applied to the fake"; exit 1; }
generation=$(kube_fake_curl "$kube_fake_url$path" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["generation"])')

set_status() { # STATUS_JSON
    kube_fake_curl -X POST -H 'Content-Type: application/json' "$kube_fake_url/_fake/status" \
        -o /dev/null -d "{\"path\": \"$path\", \"status\": $1, \"simulate\": false}"
}

ours() {
    kube_fake_curl "$kube_fake_url$path" | "$dump" --health
}

g=$generation
old=$((g - 1))
cond_deadline='{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}'
cond_progress='{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet \"web-1\" is progressing."}'
cond_replica_failure='{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "pods \"web-1-x\" is forbidden: exceeded quota"}'
states=(
    "{\"observedGeneration\": $old}"
    "{\"observedGeneration\": $old, \"conditions\": [$cond_deadline]}"
    "{\"observedGeneration\": $g}"
    "{\"observedGeneration\": $g, \"replicas\": 1, \"updatedReplicas\": 1, \"conditions\": [$cond_progress]}"
    "{\"observedGeneration\": $g, \"replicas\": 5, \"updatedReplicas\": 3, \"availableReplicas\": 2}"
    "{\"observedGeneration\": $g, \"replicas\": 3, \"updatedReplicas\": 3, \"availableReplicas\": 1, \"readyReplicas\": 2}"
    "{\"observedGeneration\": $g, \"replicas\": 3, \"updatedReplicas\": 3, \"readyReplicas\": 3, \"availableReplicas\": 3}"
    "{\"observedGeneration\": $((g + 1)), \"replicas\": 3, \"updatedReplicas\": 3, \"availableReplicas\": 4}"
    "{\"observedGeneration\": $g, \"replicas\": 3, \"updatedReplicas\": 3, \"availableReplicas\": 3, \"conditions\": [$cond_deadline]}"
    "{\"observedGeneration\": $g, \"replicas\": 2, \"updatedReplicas\": 1, \"conditions\": [$cond_deadline]}"
)
n=0
for st in "${states[@]}"; do
    n=$((n + 1))
    set_status "$st" || { echo "FAIL: state $n could not be set"; fail=1; continue; }
    k_out=$(kc rollout status deployment/web --watch=false 2>&1)
    k_rc=$?
    k_out=${k_out#error: }
    case $k_rc:$k_out in
    0:*"successfully rolled out") k_verdict=healthy ;;
    0:*) k_verdict=progressing ;;
    1:*"exceeded its progress deadline") k_verdict=failed ;;
    *)
        echo "FAIL: state $n: kubectl exit $k_rc: $k_out"
        fail=1
        continue
        ;;
    esac
    o=$(ours)
    o_verdict=${o%%$'\t'*}
    o_why=${o#*$'\t'}
    if [ "$o_verdict" = "$k_verdict" ] && [ "$o_why" = "$k_out" ]; then
        echo "agree state $n: $k_verdict: $k_out"
    else
        echo "FAIL: state $n: kubectl $k_verdict \"$k_out\", kanaria $o_verdict \"$o_why\""
        fail=1
    fi
done

# the documented difference: kanaria fails fast on ReplicaFailure=True, kubectl waits on
set_status "{\"observedGeneration\": $g, \"conditions\": [$cond_replica_failure]}"
k_out=$(kc rollout status deployment/web --watch=false 2>&1)
k_rc=$?
o=$(ours)
if [ $k_rc -eq 0 ] && [[ $k_out == Waiting* ]] && [ "${o%%$'\t'*}" = failed ]; then
    echo "differ as documented: ReplicaFailure: kubectl \"$k_out\", kanaria \"${o#*$'\t'}\""
else
    echo "FAIL: ReplicaFailure: kubectl exit $k_rc \"$k_out\", kanaria \"$o\""
    fail=1
fi

# kubectl watching: a sequence that ends rolled out, then one that ends past its deadline
sequence() { # FINAL_STATUS: kubectl's exit and last line while the states move to FINAL
    set_status "{\"observedGeneration\": $old}"
    kc rollout status deployment/web --timeout=20s >"$tmp/watch.out" 2>&1 &
    local pid=$!
    sleep 1
    set_status "{\"observedGeneration\": $g, \"replicas\": 1, \"updatedReplicas\": 1}"
    sleep 0.5
    set_status "{\"observedGeneration\": $g, \"replicas\": 3, \"updatedReplicas\": 3, \"availableReplicas\": 2}"
    sleep 0.5
    set_status "$1"
    wait "$pid"
    echo "$?:$(tail -n 1 "$tmp/watch.out")"
}
r=$(sequence "{\"observedGeneration\": $g, \"replicas\": 3, \"updatedReplicas\": 3, \"availableReplicas\": 3}")
o=$(ours)
if [ "$r" = '0:deployment "web" successfully rolled out' ] && [ "${o%%$'\t'*}" = healthy ]; then
    echo "agree watching: done"
else
    echo "FAIL: watching to done: kubectl \"$r\", kanaria \"$o\""
    fail=1
fi
r=$(sequence "{\"observedGeneration\": $g, \"replicas\": 3, \"updatedReplicas\": 3, \"availableReplicas\": 2, \"conditions\": [$cond_deadline]}")
o=$(ours)
if [ "$r" = '1:error: deployment "web" exceeded its progress deadline' ] &&
    [ "${o%%$'\t'*}" = failed ]; then
    echo "agree watching: failed"
else
    echo "FAIL: watching to a deadline: kubectl \"$r\", kanaria \"$o\""
    fail=1
fi

[ $fail -eq 0 ] && echo "rollout_agree: kubectl $(kubectl version --client -o json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null) and kanaria agree"
exit $fail
