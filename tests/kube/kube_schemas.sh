#!/usr/bin/env bash
# The objects the kubernetes platform generates (render_dump: rendered manifests, canary and
# baseline Deployments and Services, HTTPRoutes and VirtualServices with weights) pass the API's
# schemas (tests/kube/schemas/validate.mjs, npm packages pinned in package-lock.json), and the
# known-bad files in tests/kube/schemas/bad/ fail them (so this test can fail).
#
#   kube_schemas.sh RENDER_DUMP SOURCE_DIR MODULES_DIR
#
# The packages are installed with `npm ci` into MODULES_DIR (or $KANARIA_KUBE_SCHEMAS) when they
# are missing or the lock changed: the registry is needed once, never when validating. No node
# or npm: SKIPPED (exit 77), a failure when CI=true.
set -uo pipefail

dump=$1
src=$2
modules=${KANARIA_KUBE_SCHEMAS:-$3}
schemas=$src/tests/kube/schemas

skip() {
    echo "SKIPPED: $*"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: CI=true and $*"
        exit 1
    fi
    exit 77
}

command -v node >/dev/null 2>&1 || skip "node not found (tests/deps.sh installs nodejs)"
command -v npm >/dev/null 2>&1 || skip "npm not found (tests/deps.sh installs npm)"

mkdir -p "$modules"
if [ ! -d "$modules/node_modules/kubernetes-models" ] ||
    ! cmp -s "$schemas/package-lock.json" "$modules/package-lock.json"; then
    cp "$schemas/package.json" "$schemas/package-lock.json" "$modules/"
    echo "kube_schemas: npm ci in $modules"
    if ! (cd "$modules" && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
        rm -f "$modules/package-lock.json" # so the next run installs again
        echo "FAIL: npm ci of the schema packages failed"
        exit 1
    fi
fi
export KANARIA_KUBE_SCHEMAS=$modules

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

"$dump" "$tmp" || { echo "FAIL: render_dump"; exit 1; }
count=$(find "$tmp" -name '*.json' | wc -l)
if [ "$count" -lt 20 ]; then
    echo "FAIL: render_dump wrote $count objects, expected at least 20"
    fail=1
fi
out=$(timeout 60 node "$schemas/validate.mjs" "$tmp"/*.json)
rc=$?
echo "$out" | sed "s|$tmp/||"
if [ $rc -ne 0 ] || [ "$(echo "$out" | grep -c '^ok ')" -ne "$count" ]; then
    echo "FAIL: generated objects do not all pass the schemas (rc $rc)"
    fail=1
fi

for f in "$schemas"/bad/*.json; do
    out=$(timeout 60 node "$schemas/validate.mjs" "$f")
    rc=$?
    echo "$out" | sed "s|$schemas/||"
    if [ $rc -ne 1 ] || ! echo "$out" | grep -q '^FAIL '; then
        echo "FAIL: $f passed (rc $rc), it must not"
        fail=1
    fi
done

# the errors name the fields
out=$(node "$schemas/validate.mjs" "$schemas/bad/deployment-no-selector.json")
for want in "must have required property selector" "replicas must be integer" \
    "must have required property name"; do
    if ! echo "$out" | grep -q "$want"; then
        echo "FAIL: no '$want' in: $out"
        fail=1
    fi
done
out=$(node "$schemas/validate.mjs" "$schemas/bad/virtualservice-weights-90.json")
echo "$out" | grep -q "weights must add up to 100, got 90" || {
    echo "FAIL: VirtualService weights: $out"
    fail=1
}

[ $fail -eq 0 ] && echo "kube_schemas: $count generated objects valid, bad files refused"
exit $fail
