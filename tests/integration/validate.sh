#!/usr/bin/env bash
# `kanaria validate` as a user runs it: the examples pass; a broken app gets located errors and
# exit 1; usage errors exit 2; --json is valid JSON.
set -uo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passed=0

check() { # name, condition result
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: $1"
        failures=$((failures + 1))
    fi
}

out=$("$bin" validate "$src/examples" -c "$src/examples/kanaria.yaml" 2>&1)
rc=$?
echo "$out"
check "examples validate with exit 0" $rc
grep -q "^ok web (7 stages)$" <<<"$out"
check "examples print 'ok web (7 stages)'" $?

mkdir -p "$tmp/repo/apps/shop"
cat >"$tmp/repo/apps/shop/app.kanaria.yaml" <<'YAML'
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: shop}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: CANARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {canary: 150}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
cat >"$tmp/repo/apps/shop/service.yaml" <<'YAML'
apiVersion: kanaria.dev/v1
kind: LocalService
metadata: {name: shop}
spec:
  command: [/bin/shop, --port, "{{port}}"]
  frontend: {bind: 127.0.0.1:9000}
YAML
out=$(cd "$tmp/repo" && "$bin" validate 2>&1)
rc=$?
echo "$out"
[ $rc -eq 1 ]
check "a broken app exits 1" $?
grep -qF "apps/shop/app.kanaria.yaml:9:22: stage 'TRAFFIC_ROUTING': 'canary' must be between 0 and 100, got 150" <<<"$out"
check "the error is located and plain" $?
grep -q "^invalid shop (1 error)$" <<<"$out"
check "the app is named invalid" $?

out=$("$bin" validate "$tmp/repo" --json)
check "--json exits 1 for a broken app" $(( $? == 1 ? 0 : 1 ))
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["valid"] is False; a=d["apps"][0]; assert a["name"]=="shop" and a["errors"][0]["line"]==9, d' <<<"$out"
check "--json is JSON with located errors" $?

"$bin" validate a b >/dev/null 2>&1
check "two folders is a usage error (exit 2)" $(( $? == 2 ? 0 : 1 ))
"$bin" validate --bogus >/dev/null 2>&1
check "an unknown option is a usage error (exit 2)" $(( $? == 2 ? 0 : 1 ))
"$bin" frobnicate >/dev/null 2>&1
check "an unknown command is a usage error (exit 2)" $(( $? == 2 ? 0 : 1 ))
ver=$("$bin" version)
grep -q "^kanaria " <<<"$ver"
check "version prints" $?
"$bin" validate "$tmp/nowhere" >/dev/null 2>&1
check "a missing folder exits 1" $(( $? == 1 ? 0 : 1 ))
ref=$("$bin" help config)
grep -q '`dataDir`' <<<"$ref"
check "help config prints the reference" $?
ref=$("$bin" help platform local)
grep -q '`haproxy.metricsBind`' <<<"$ref" && grep -q '`ports.min`' <<<"$ref"
check "help platform local prints the local type's keys" $?
grep -q '^- `{{backend}}`: ' <<<"$ref" && grep -q '^- `{{server}}`: ' <<<"$ref"
check "help platform local lists its analysis placeholders" $?
"$bin" help platform nomad >"$tmp/help.out" 2>"$tmp/help.err"
check "help on an unknown platform type is a usage error (exit 2)" $(( $? == 2 ? 0 : 1 ))
grep -qx "kanaria: no platform type 'nomad' (types: local, ecs, kubernetes)" "$tmp/help.err"
check "help on an unknown platform type lists the types" $?
ref=$("$bin" help platform)
grep -q '^  local ' <<<"$ref"
check "help platform lists the types" $?
ref=$("$bin" help metrics prometheus)
grep -q '`bearerTokenFile`' <<<"$ref"
check "help metrics prometheus prints its keys" $?
"$bin" help metrics graphite 2>"$tmp/help.err" >/dev/null
check "help on an unknown metrics type is a usage error (exit 2)" $(( $? == 2 ? 0 : 1 ))
grep -qx "kanaria: no metrics provider type 'graphite' (types: prometheus, cloudwatch, datadog, web)" "$tmp/help.err"
check "help on an unknown metrics type lists the types" $?
ref=$("$bin" help metrics cloudwatch)
grep -q '^## Queries' <<<"$ref" && grep -q '"metricName": "HTTPCode_Target_5XX_Count"' <<<"$ref" &&
    grep -q '`platform`' <<<"$ref"
check "help metrics cloudwatch documents the query and the platform it borrows" $?
ref=$("$bin" help localservice)
grep -q '`spec.command`' <<<"$ref"
check "help localservice prints the LocalService reference" $?

echo "validate: $passed passed, $failures failed"
[ $failures -eq 0 ]
