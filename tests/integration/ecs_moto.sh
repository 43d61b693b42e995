#!/usr/bin/env bash
# The ECS platform end to end on moto (moto_server, the AWS emulator), with request
# authentication on: every call kanaria makes is SigV4-signed with an IAM user's key and checked
# against that user's policy (the minimal one the README lists), as AWS would. The world
# (tests/aws/moto_env.py): a VPC, an ECS cluster, an ALB whose listener forwards to the pair
# {primary 100, canary 0} by its default action, a path rule and a host-header rule (with
# stickiness), and a foreign rule forwarding to the primary and a third target group.
#  1. the first commit creates the service (EXTERNAL controller) and its primary task set;
#  2. a weight edited behind kanaria's back is drift, shown by `kanaria status`; the app does not
#     heal itself (onOutOfSync false), and the weight put back resolves it;
#  3. a commit changing the image: CANARY_ROLLOUT 20% → TRAFFIC_ROUTING 20 (the default action
#     and both rules at 80/20, stickiness kept, the foreign rule untouched) → ANALYSIS on
#     CloudWatch counts this test writes → WAIT_APPROVAL; kill -9 there and a restart resume it
#     with no second task set; `kanaria approve` → PRIMARY_ROLLOUT → 100/0 → CANARY_CLEAN, the
#     canary task set deleted after the weights left it;
#  4. a bad commit: kill -9 during ANALYSIS, then the canary's target group reports 5xx; the
#     restarted kanaria fails it and rolls back in order: weights back to the primary first,
#     then the canary task set deleted (moto's recording of kanaria's calls, and its events);
#  5. with onOutOfSync (from 3's commit) a weight edited by hand is healed;
#  6. a wrong secret is refused by moto: kanaria logs AWS's error and no secret.
# What moto cannot show (no traffic, no task counts, task sets steady at once, no draining) is
# not asserted; each assertion names the moto field it reads (see moto_env.py). moto has no task
# counts, which kanaria waits for: tests/aws/counts_proxy.py, between kanaria and moto, adds
# those of a set that converged at once, and passes everything else unchanged.
set -uo pipefail
bin=$1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../aws/moto.sh"

if ! moto_find; then
    echo "SKIPPED: $moto_missing"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: CI=true, and the CI image has moto: a missing moto is a failure there"
        exit 1
    fi
    exit 77
fi

tmp=$(mktemp -d)
pid=
moto_pid=
proxy_pid=
feed_pid=
stop_all() {
    [ -n "$feed_pid" ] && kill "$feed_pid" 2>/dev/null
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
    [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null
    cleanup
}
trap stop_all EXIT

# stop_serve: SIGTERM to kanaria, and its exit status; killed (status 137) after 20 s
stop_serve() {
    local rc
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && { echo "  kanaria did not stop within 20s of SIGTERM"; kill -9 "$pid"; }
    wait "$pid"
    rc=$?
    pid=
    return $rc
}
# need DESCRIPTION STATUS: a check the rest depends on; when it fails, the test ends here
need() {
    check "$1" "$2"
    [ "$2" -eq 0 ] || { summary; exit 1; }
}

moto_start "$tmp"
need "moto_server starts ($moto_bin)" $?
moto_env --endpoint "$moto_url" setup >"$tmp/env.json" 2>"$tmp/setup.log"
rc=$?
need "the AWS world is set up on moto ($(tail -n 3 "$tmp/setup.log"))" $rc
# kanaria talks to moto through tests/aws/counts_proxy.py: it adds to task sets the counts moto
# lacks (a set converged at once), and passes everything else as it is, signatures included.
moto_proxy_start "$tmp"
need "the counts proxy starts" $?
e() { moto_env --env "$tmp/env.json" get "$1"; } # a value of the world: e kanaria.accessKeyId
secret=$(e kanaria.secretAccessKey)
subnets=$(e subnets)
sg=$(e securityGroup)
tg_primary=$(e targetGroups.primary)
tg_canary=$(e targetGroups.canary)

# The weights of every forward action, read back with DescribeListeners/DescribeRules (moto
# stores ForwardConfig.TargetGroups[].Weight and TargetGroupStickinessConfig verbatim):
# "default=100/0 path=100/0 host=100/0 foreign=60/40 sticky=true/300" (primary/canary; the
# foreign rule primary/other; sticky: the host rule's stickiness).
weights() { moto_env --env "$tmp/env.json" weights --summary; }
# The service and its task sets (DescribeServices: status, deploymentController; taskSets[]:
# status, taskDefinition (its image from DescribeTaskDefinition), loadBalancers, scale):
# "ACTIVE EXTERNAL | PRIMARY:1.25:primary:100"
service() { moto_env --env "$tmp/env.json" ecs --summary kanaria-demo web; }
task_sets() { service | sed 's/^.*| //'; }
# kanaria's AWS calls so far, in order, from moto's recording of every request
calls() { moto_env --env "$tmp/env.json" calls "$tmp/moto.rec"; }
# kanaria's AWS calls since the N-th: calls_since N (a variable first: `grep -q` closing a pipe
# early would fail the pipeline under pipefail)
calls_since() { local all; all=$(calls); tail -n +$(($1 + 1)) <<<"$all"; }
# deployment_of COMMIT: the id of the deployment a commit made, waiting up to 30 s for it
deployment_of() {
    wait_for "a deployment of $1" "select count(*) > 0 from deployments where commit_id = '$1' and [trigger] = 'commit'" 1 >&2
    sql "select max(id) from deployments where commit_id = '$1' and [trigger] = 'commit'"
}

api=$(free_port)
token=kn-ecs-moto-alice
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
driftInterval: 1s
users:
  - {name: alice, role: operator, tokenSha256: $(hash "$token")}
platforms:
  - name: aws
    type: ecs
    region: us-east-1
metricsProviders:
  - {name: cw, type: cloudwatch, platform: aws}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
YAML
export KANARIA_ADDR="http://127.0.0.1:$api" KANARIA_TOKEN=$token

# The app, in the shapes PipeCD's ECS apps use. app VERSION ON_OUT_OF_SYNC
mkdir -p "$tmp/upstream/web"
app() {
    cat >"$tmp/upstream/web/taskdef.yaml" <<YAML
family: web
networkMode: awsvpc
requiresCompatibilities: [FARGATE]
cpu: "256"
memory: "512"
containerDefinitions:
  - name: web
    image: public.ecr.aws/nginx/nginx:$1
    essential: true
    memoryReservation: 256
    portMappings: [{containerPort: 80, protocol: tcp}]
YAML
    cat >"$tmp/upstream/web/servicedef.yaml" <<YAML
cluster: kanaria-demo
serviceName: web
desiredCount: 5
launchType: FARGATE
deploymentController: {type: EXTERNAL}
networkConfiguration:
  awsvpcConfiguration:
    subnets: [$subnets]
    securityGroups: [$sg]
    assignPublicIp: DISABLED
YAML
    cat >"$tmp/upstream/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  platform: aws
  trigger: {onOutOfSync: $2}
  ecs:
    taskDefinitionFile: taskdef.yaml
    serviceDefinitionFile: servicedef.yaml
    targetGroups:
      primary: {targetGroupArn: $tg_primary, containerName: web, containerPort: 80}
      canary: {targetGroupArn: $tg_canary, containerName: web, containerPort: 80}
  pipeline:
    - name: CANARY_ROLLOUT
      with: {replicas: "20%"}
    - name: TRAFFIC_ROUTING
      with: {canary: 20}
    - name: ANALYSIS
      with:
        duration: 20s
        metrics:
          - name: canary-5xx
            provider: cw
            interval: 2s
            query: >-
              {"namespace": "AWS/ApplicationELB", "metricName": "HTTPCode_Target_5XX_Count",
              "dimensions": {"TargetGroup": "{{targetGroup}}", "LoadBalancer": "{{loadBalancer}}"},
              "stat": "Sum", "period": 60}
            expected: {max: 2}
    - name: WAIT_APPROVAL
      with: {approvers: [alice]}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {primary: 100}
    - name: CANARY_CLEAN
YAML
}
# The CloudWatch counts the ALB would report, every second: 50 requests per target group, the
# given share of the canary's as 5xx (moto routes no traffic, so nothing else writes them).
feed() { # CANARY_5XX_SHARE
    [ -n "$feed_pid" ] && kill "$feed_pid" 2>/dev/null
    "$moto_py" "$moto_here/moto_env.py" --env "$tmp/env.json" feed --canary-5xx "$1" \
        >>"$tmp/feed.log" 2>&1 &
    feed_pid=$!
}

# Credentials from the environment (the SDKs' chain, first link), endpoints from
# AWS_ENDPOINT_URL; nothing else of this machine's AWS setup is read.
export HOME=$tmp AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=$proxy_url
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE \
    AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
    AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_REGION AWS_DEFAULT_REGION
export AWS_ACCESS_KEY_ID=$(e kanaria.accessKeyId) AWS_SECRET_ACCESS_KEY=$secret

git init -q -b main
app 1.25 false
git add -A && git commit -qm "web 1.25"
before=$(weights)
"$bin" validate "$tmp/upstream" -c "$tmp/kanaria.yaml" >"$tmp/validate.out" 2>&1
rc=$?
need "the app and config are valid ($(tr '\n' ' ' <"$tmp/validate.out"))" $rc

# 1. the first commit: the service and its primary task set
start
wait_for "1.25 deployed" "select strategy, status from deployments where id = 1" "QUICK_SYNC|SUCCESS" 60
rc=$?
need "the first commit is a quick sync that succeeds ($(sql "select reason from deployments"))" $rc
out=$(service)
[ "${out% |*}" = "ACTIVE EXTERNAL" ]
check "the service is created with the EXTERNAL deployment controller (DescribeServices: $out)" $?
out=$(task_sets)
[ "$out" = "PRIMARY:1.25:primary:100" ]
check "one task set, the primary, at 100% on the primary target group (DescribeServices: $out)" $?
out=$(weights)
[ "$out" = "$before" ]
check "a quick sync leaves the weights as they were ($out)" $?
sleep 3
[ -z "$(sql "select drift from apps where name = 'web'")" ]
rc=$?
check "right after deploying, the app does not drift ($(sql "select drift from apps"))" $rc

# 2. a weight edited behind kanaria's back: drift, shown; not healed without onOutOfSync
moto_env --env "$tmp/env.json" set-weight path 50 50
wait_for "drift" "select count(*) > 0 from events where type = 'DRIFT_DETECTED'" 1
check "a weight edited behind kanaria's back is drift" $?
out=$("$bin" status web 2>&1)
grep -q "^drift: .*[0-9]" <<<"$out" && ! grep -q "^drift: *none" <<<"$out"
rc=$?
check "kanaria status shows it ($(grep '^drift' <<<"$out"))" $rc
sleep 3
out=$(weights)
grep -q " path=50/50 " <<<"$out" && [ "$(sql "select count(*) from deployments")" = 1 ]
check "without onOutOfSync nothing heals it ($out)" $?
moto_env --env "$tmp/env.json" set-weight path 100 0
wait_for "drift resolved" "select count(*) > 0 from events where type = 'DRIFT_RESOLVED'" 1
check "the weight put back resolves the drift" $?

# 3. a new image: the canary, analysis, approval, promotion
feed 0
app 1.26 true
n0=$(calls | wc -l)
git commit -qam "web 1.26"
d2=$(deployment_of "$(git rev-parse HEAD)")
waiting_stage "$d2"
rc=$?
need "1.26 runs the canary and waits for approval ($(sql "select reason from deployments where id = $d2"))" $rc
out=$(task_sets)
[ "$out" = "ACTIVE:1.26:canary:20 PRIMARY:1.25:primary:100" ]
check "the canary task set runs at 20% on the canary target group beside the primary ($out)" $?
out=$(weights)
[ "$out" = "default=80/20 path=80/20 host=80/20 foreign=60/40 sticky=true/300" ]
check "the default action and both rules at 80/20, stickiness kept, the foreign rule untouched ($out)" $?
[ "$(sql "select status from stages where deployment = $d2 and name = 'ANALYSIS'")" = SUCCESS ]
rc=$?
check "the analysis passed on the CloudWatch counts ($(sql "select verdict, values_json from analysis_records where deployment = $d2" | tr '\n' ' '))" $rc
[ "$(sql "select count(*) from analysis_records where deployment = $d2 and verdict = 'PASS'")" -ge 2 ]
check "it evaluated the check at least twice" $?
calls_since "$n0" >"$tmp/calls"
grep -q "GetMetricData" "$tmp/calls"
check "it asked CloudWatch (GetMetricData) with kanaria's key" $?

kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
start
sleep 3
wait_for "still waiting" "select status from deployments where id = $d2" "RUNNING"
check "the restarted kanaria resumes the deployment" $?
out=$(task_sets)
[ "$out" = "ACTIVE:1.26:canary:20 PRIMARY:1.25:primary:100" ]
check "no second task set after the restart ($out)" $?

"$bin" approve web >"$tmp/approve.out" 2>&1
rc=$?
check "kanaria approve web ($(cat "$tmp/approve.out"))" $rc
wait_for "1.26 promoted" "select status from deployments where id = $d2" "SUCCESS" 60
rc=$?
need "1.26 is promoted ($(sql "select reason from deployments where id = $d2"))" $rc
out=$(weights)
[ "$out" = "default=100/0 path=100/0 host=100/0 foreign=60/40 sticky=true/300" ]
check "all the traffic on the primary again, the foreign rule untouched ($out)" $?
out=$(task_sets)
[ "$out" = "PRIMARY:1.26:primary:100" ]
check "one task set left: 1.26 is the primary; the canary and the old primary are deleted ($out)" $?
sleep 3
out=$(sql "select type || ': ' || message from events where id > (select max(id) from events
    where deployment = $d2) and type in ('DRIFT_DETECTED', 'PLANNED')")
[ -z "$out" ]
check "after the promotion no drift is seen and nothing is redeployed ($out)" $?
# the canary's task set goes only after no weight points at its target group
order=$(calls_since "$n0" | grep -n "Modify\|DeleteTaskSet" | tr '\n' ' ')
last_modify=$(calls_since "$n0" | grep -n "Modify" | tail -n1 | cut -d: -f1)
last_delete=$(calls_since "$n0" | grep -n "DeleteTaskSet" | tail -n1 | cut -d: -f1)
[ -n "$last_modify" ] && [ -n "$last_delete" ] && [ "$last_modify" -lt "$last_delete" ]
check "the canary task set is deleted after the last weight change ($order)" $?

# 4. a bad image: kill -9 mid-analysis, then its canary's target group reports 5xx; the restarted
# kanaria fails the analysis and rolls back in order
app 1.27 true
n0=$(calls | wc -l)
git commit -qam "web 1.27 (answers 5xx)"
d3=$(deployment_of "$(git rev-parse HEAD)")
wait_for "analysis of 1.27" "select name, status from stages where deployment = $d3 and status = 'RUNNING'" \
    "ANALYSIS|RUNNING" 60
need "1.27 reaches the analysis" $?
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
feed 0.3
start
wait_for "1.27 rolled back" "select status from deployments where id = $d3" "FAILURE" 90
check "the bad canary is rolled back after the restart" $?
reason=$(sql "select reason from deployments where id = $d3")
grep -q "stage ANALYSIS failed: .*canary-5xx.*(rolled back)" <<<"$reason"
check "the reason names the failed check ($reason)" $?
out=$(weights)
[ "$out" = "default=100/0 path=100/0 host=100/0 foreign=60/40 sticky=true/300" ]
check "the weights are back on the primary, the foreign rule untouched ($out)" $?
out=$(task_sets)
[ "$out" = "PRIMARY:1.26:primary:100" ]
check "the canary task set is gone; 1.26 is still the primary ($out)" $?
order=$(calls_since "$n0" | grep -n "Modify\|DeleteTaskSet" | tr '\n' ' ')
last_modify=$(calls_since "$n0" | grep -n "Modify" | tail -n1 | cut -d: -f1)
first_delete=$(calls_since "$n0" | grep -n "DeleteTaskSet" | head -n1 | cut -d: -f1)
[ -n "$last_modify" ] && [ -n "$first_delete" ] && [ "$last_modify" -lt "$first_delete" ]
check "moto saw the weights restored before the canary task set was deleted ($order)" $?
ids=$(sql "select group_concat(id) from (select id from events where deployment = $d3 and type = 'STAGE_LOG'
    and (message like '%traffic back to the primary%' or message like '%removing the canary%') order by id)")
first_traffic=$(sql "select min(id) from events where deployment = $d3 and message like '%traffic back to the primary%'")
first_remove=$(sql "select min(id) from events where deployment = $d3 and message like '%removing the canary%'")
[ -n "$first_traffic" ] && [ -n "$first_remove" ] && [ "$first_traffic" -lt "$first_remove" ]
check "kanaria's events say the same order (events $ids)" $?
feed 0
sleep 3
[ "$(sql "select count(*) from deployments where commit_id = '$(git rev-parse HEAD)'")" = 1 ]
check "the failed commit is not deployed again by the next poll" $?

# 5. self-heal: the last good commit (1.26) has onOutOfSync
healed=$(sql "select count(*) from deployments where [trigger] = 'self-heal' and status = 'SUCCESS'")
resolved=$(sql "select count(*) from events where type = 'DRIFT_RESOLVED'")
moto_env --env "$tmp/env.json" set-weight host 30 70
wait_for "self-heal" "select count(*) > $healed from deployments where [trigger] = 'self-heal' and status = 'SUCCESS'" 1 60
rc=$?
check "a weight edited by hand is healed ($(sql "select group_concat(message) from events where type = 'DRIFT_DETECTED'"))" $rc
out=$(weights)
[ "$out" = "default=100/0 path=100/0 host=100/0 foreign=60/40 sticky=true/300" ]
check "self-heal puts the weights back ($out)" $?
wait_for "healed drift resolved" "select count(*) > $resolved from events where type = 'DRIFT_RESOLVED'" 1
check "the drift is resolved" $?

# 6. a wrong secret: moto refuses the signature; kanaria says so with AWS's words, no secret
stop_serve
check "kanaria exits 0 on SIGTERM" $?
wrong=WrOnGsEcReT0000000000000000000000000000x
size=$(stat -c %s "$tmp/log")
AWS_SECRET_ACCESS_KEY=$wrong start
refused() { tail -c +$((size + 1)) "$tmp/log" | grep -m1 -o '.\{0,80\}SignatureDoesNotMatch.\{0,60\}'; }
for _ in $(seq 1 75); do
    refused >/dev/null && break
    sleep 0.2
done
refused >/dev/null
rc=$?
check "a wrong secret: kanaria logs moto's refusal in AWS's words ($(refused))" $rc
stop_serve
! grep -qF -e "$wrong" -e "$secret" "$tmp/log"
check "neither secret is in kanaria's log" $?
! grep -rqF -e "$wrong" -e "$secret" "$tmp/data"
check "nor anywhere under its dataDir (the store included)" $?

summary
