#!/usr/bin/env bash
# kanaria's drift rule (kn_kube_drift, render.c) on what an API server gives back: every object
# render_dump generates is applied with server-side apply to kanaria's fake API server
# (tests/fakes/kube_fake.py: defaults, managedFields, status, generation as kube-apiserver adds
# them) and read back, and nothing kanaria applied reads as drift; then changes another field
# manager makes (an image, replicas, route weights) are drift, the weights only when not skipped.
#
#   drift_fake.sh RENDER_DUMP
#
# Needs python3, openssl and curl: SKIPPED (exit 77) without one, a failure when CI=true.
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

for tool in python3 openssl curl; do
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
kube_fake_start "$tmp" || { echo "FAIL: $kube_fake_error"; exit 1; }
fail=0

# The API paths of the objects in JSON files: "FILE<TAB>PATH" lines, into paths[FILE].
declare -A paths
load_paths() { # FILE...
    local f p
    while IFS=$'\t' read -r f p; do
        paths[$f]=$p
    done < <(python3 - "$@" <<'PY'
import json, sys
for f in sys.argv[1:]:
    o = json.load(open(f))
    group, _, version = o["apiVersion"].rpartition("/")
    plural = {"Deployment": "deployments", "Service": "services", "HTTPRoute": "httproutes",
              "VirtualService": "virtualservices", "Namespace": "namespaces"}[o["kind"]]
    base = "/apis/%s/%s" % (group, version) if group else "/api/" + version
    ns = o["metadata"].get("namespace")
    print("%s\t%s%s/%s/%s" % (f, base, "/namespaces/" + ns if ns else "", plural,
                              o["metadata"]["name"]))
PY
    )
}
api_path() { # FILE
    echo "${paths[$1]}"
}

apply() { # FILE
    kube_fake_curl -X PATCH -H 'Content-Type: application/apply-patch+yaml' -o /dev/null \
        "$kube_fake_url$(api_path "$1")?fieldManager=kanaria&force=true" --data-binary @"$1"
}

judge() { # FILE [--skip-weights]: kanaria's drift of the live object against FILE
    kube_fake_curl "$kube_fake_url$(api_path "$1")" | "$dump" --drift "$@"
}

mkdir -p "$tmp/objs"
"$dump" "$tmp/objs" >/dev/null || { echo "FAIL: render_dump"; exit 1; }
echo '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}' >"$tmp/ns.json"
load_paths "$tmp/ns.json" "$tmp"/objs/*.json
apply "$tmp/ns.json" || { echo "FAIL: the namespace could not be applied"; exit 1; }

# each name once: the last file of a name is what stays applied
declare -A last
for f in "$tmp"/objs/*.json; do
    last[$(api_path "$f")]=$f
done
for p in "${!last[@]}"; do
    f=${last[$p]}
    apply "$f" || { echo "FAIL: $(basename "$f") could not be applied"; fail=1; }
done
sleep 1 # the fake's controllers write status and pods meanwhile
for p in $(printf '%s\n' "${!last[@]}" | sort); do
    f=${last[$p]}
    got=$(judge "$f")
    if [ "$got" = none ]; then
        echo "no drift: $(basename "$f")"
    else
        echo "FAIL: $(basename "$f") drifts right after apply: $got"
        fail=1
    fi
done

expect_drift() { # FILE WANT [--skip-weights]
    local got
    got=$(judge "$1" "${@:3}")
    if [[ $got == "$2"* ]]; then
        echo "drift: $got"
    else
        echo "FAIL: $(basename "$1"): wanted drift '$2...', got: $got"
        fail=1
    fi
}

canary=$tmp/objs/03-deployment-canary.json
kube_fake_curl -X PATCH -H 'Content-Type: application/strategic-merge-patch+json' -o /dev/null \
    "$kube_fake_url$(api_path "$canary")?fieldManager=someone" \
    -d '{"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:evil"}]}}}}' ||
    { echo "FAIL: patch of the canary"; fail=1; }
expect_drift "$canary" 'spec.template.spec.containers[web].image: live "web:evil", kanaria applied "ghcr.io/acme/web:1.4.2"'
kube_fake_curl -X PATCH -H 'Content-Type: application/merge-patch+json' -o /dev/null \
    "$kube_fake_url$(api_path "$canary")?fieldManager=someone" -d '{"spec": {"replicas": 7}}'
expect_drift "$canary" 'spec.replicas: live 7, kanaria applied 1'

route=${last[$(api_path "$tmp/objs/12-httproute-weights.json")]}
python3 - "$route" >"$tmp/route-patch.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
for rule in o["spec"]["rules"]:
    for ref in rule.get("backendRefs", []):
        if ref["name"] == "web":
            ref["weight"] = ref.get("weight", 1) + 7
print(json.dumps({"spec": {"rules": o["spec"]["rules"]}}))
PY
kube_fake_curl -X PATCH -H 'Content-Type: application/merge-patch+json' -o /dev/null \
    "$kube_fake_url$(api_path "$route")?fieldManager=someone" --data-binary @"$tmp/route-patch.json"
# the last HTTPRoute is the one with header routing's rules: its rule 0 sends to the canary alone
expect_drift "$route" 'spec.rules[1].backendRefs[web].weight: live '
got=$(judge "$route" --skip-weights)
if [ "$got" = none ]; then
    echo "no drift with the weights skipped: $(basename "$route")"
else
    echo "FAIL: weights skipped, still drift: $got"
    fail=1
fi

[ $fail -eq 0 ] && echo "drift_fake: no drift after apply, every change found"
exit $fail
