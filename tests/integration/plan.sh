#!/usr/bin/env bash
# `kanaria plan` on a real Git monorepo of two apps: a commit touching one app plans exactly that
# app with the right strategy, summary and diff; a docs-only change deploys nothing; an invalid
# app at a commit is reported and exits 1. An ECS app's task definition is diffed likewise.
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passed=0
check() {
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
git() { command git -C "$tmp/repo" -c user.name=dev -c user.email=dev@example.com \
    -c commit.gpgsign=false "$@"; }

app() { # dir name version
    mkdir -p "$tmp/repo/$1"
    cat >"$tmp/repo/$1/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: $2}
spec:
  manifests: [service.yaml]
  trigger: {ignore: ["docs/**"]}
  pipeline:
    - name: CANARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {canary: 10}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
    service "$1" "$2" "$3" 2
}
service() { # dir name version replicas
    cat >"$tmp/repo/$1/service.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: LocalService
metadata: {name: $2}
spec:
  command: [/opt/$2/$3/$2, --port, "{{port}}"]
  replicas: $4
  frontend: {bind: "127.0.0.1:$([ "$2" = web ] && echo 9000 || echo 9001)"}
YAML
}

mkdir -p "$tmp/repo"
git init -q -b main
app apps/web web 1.0
app apps/api api 1.0
git add -A && git commit -qm "first"

out=$("$bin" plan "$tmp/repo" 2>&1); rc=$?
echo "$out"
check "first commit plans with exit 0" $rc
grep -q "^web: QUICK_SYNC  quick sync: first deployment$" <<<"$out"
check "first commit: web quick sync" $?

service apps/web web 1.1 2
git commit -qam "web 1.1"
out=$("$bin" plan "$tmp/repo" 2>&1); rc=$?
echo "$out"
check "exit 0" $rc
grep -q "^web: PIPELINE  pipeline: command changed /opt/web/1.0/web → /opt/web/1.1/web$" <<<"$out"
check "web plans a pipeline with the summary" $?
grep -q "^api: not touched by the change$" <<<"$out"
check "api is not touched" $?
grep -qF 'spec.command[0]: "/opt/web/1.0/web" -> "/opt/web/1.1/web"' <<<"$out"
check "the plan shows the diff" $?
[ "$(grep -c 'PIPELINE\|QUICK_SYNC' <<<"$out")" -eq 1 ]
check "exactly one app planned" $?

service apps/api api 1.0 3
git commit -qam "scale api"
out=$("$bin" plan "$tmp/repo" --json 2>&1)
python3 -c '
import json, sys
d = json.load(sys.stdin)
apps = {a["name"]: a for a in d["apps"]}
assert apps["api"]["strategy"] == "QUICK_SYNC", apps
assert apps["api"]["summary"] == "quick sync: replicas 2 → 3", apps
assert apps["web"]["touched"] is False, apps
' <<<"$out"
check "replicas alone: quick sync (json)" $?

out=$("$bin" plan "$tmp/repo" --from HEAD~2 --to HEAD 2>&1)
grep -q "^web: PIPELINE" <<<"$out" && grep -q "^api: QUICK_SYNC" <<<"$out"
check "--from/--to spans both commits" $?

mkdir -p "$tmp/repo/apps/web/docs" && echo hi >"$tmp/repo/apps/web/docs/a.md"
git add -A && git commit -qm "docs"
out=$("$bin" plan "$tmp/repo" 2>&1)
grep -q "^web: not touched by the change$" <<<"$out"
check "docs/** is ignored by the trigger" $?

sed -i 's/canary: 10/canary: 150/' "$tmp/repo/apps/api/app.kanaria.yaml"
git commit -qam "break api"
out=$("$bin" plan "$tmp/repo" 2>&1); rc=$?
echo "$out"
[ $rc -eq 1 ]
check "an invalid app exits 1" $?
grep -qF "apps/api/app.kanaria.yaml:10:22: stage 'TRAFFIC_ROUTING': 'canary' must be between 0 and 100, got 150" <<<"$out"
check "its located error is shown" $?

# An ECS app: its task and service definitions are manifests like any other, diffed member by
# member, and checked against the API's shapes at the commit.
ecs() { git -C "$tmp/ecs" "$@"; } # git() above, in the second repository
taskdef() { # image
    cat >"$tmp/ecs/web/taskdef.yaml" <<YAML
family: web
containerDefinitions:
  - name: web
    image: $1
    portMappings: [{containerPort: 80}]
cpu: 256
memory: 512
YAML
}
mkdir -p "$tmp/ecs/web"
cat >"$tmp/ecs/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  platform: ecs
  ecs:
    taskDefinitionFile: taskdef.yaml
    serviceDefinitionFile: servicedef.yaml
    targetGroups:
      primary: {targetGroupArn: arn:tg/p, containerName: web, containerPort: 80}
YAML
printf 'cluster: prod\nserviceName: web\ndesiredCount: 2\n' >"$tmp/ecs/web/servicedef.yaml"
taskdef nginx:1.25
ecs init -q -b main
ecs add -A && ecs commit -qm "web on ecs"
taskdef nginx:1.26
ecs commit -qam "web 1.26"
out=$("$bin" plan "$tmp/ecs" 2>&1); rc=$?
echo "$out"
check "ecs: exit 0" $rc
grep -q "^web: QUICK_SYNC" <<<"$out" # no pipeline
check "ecs: the change is planned" $?
grep -qx '    ~ TaskDefinition/web' <<<"$out"
check "ecs: the task definition changed" $?
grep -qxF '        spec.containerDefinitions[0].image: "nginx:1.25" -> "nginx:1.26"' <<<"$out"
check "ecs: the diff names the container's image" $?
sed -i 's/    image:/    imgae:/' "$tmp/ecs/web/taskdef.yaml"
ecs commit -qam "typo"
out=$("$bin" plan "$tmp/ecs" 2>&1); rc=$?
echo "$out"
[ $rc -eq 1 ]
check "ecs: an invalid task definition exits 1" $?
grep -qF "web/taskdef.yaml:4:5: containerDefinitions[0].imgae: unknown member of ContainerDefinition (did you mean 'image'?)" <<<"$out"
check "ecs: its located error is shown" $?

"$bin" plan "$tmp/repo" --to nosuchrev >/dev/null 2>&1
check "an unknown revision exits 1" $(( $? == 1 ? 0 : 1 ))
"$bin" plan "$tmp/nothing" >/dev/null 2>&1
check "a missing repository exits 1" $(( $? == 1 ? 0 : 1 ))

echo "plan: $passed passed, $failures failed"
[ $failures -eq 0 ]
