#!/usr/bin/env bash
# The ECS demo: a canary of an ECS service on moto, the AWS emulator, with every request signed
# and checked against an IAM user's policy.
#
#     examples/ecs/demo.sh [--binary-dir DIR]
#
# DIR holds the built kanaria (default: build). It needs moto_server (the machine image's pip
# moto 5.2.1; not in Debian 12), git, curl and python3; without moto it says so and exits 77.
# Everything happens in a new temporary folder: moto_server on a loopback port with an ECS
# cluster, an ALB (a listener, a path rule and a host-header rule that forward to the
# primary/canary target groups, and a rule of another service), a Git remote holding the app
# examples/ecs/repo/shop/, and `kanaria serve`. Then:
#   1. the first commit creates the ECS service and its primary task set (a quick sync);
#   2. a new image runs as a canary: 20% of the tasks, 80/20 on every matching rule, the 5xx
#      counts read from CloudWatch, an approval, the promotion;
#   3. an image whose canary answers 30% 5xx: the analysis fails and kanaria rolls back.
# moto runs no container and routes no request: the demo writes the counts the ALB would report
# to CloudWatch, and shows the weights as the ALB's API reads them back.
# Exit 0 when all of that happened as told, 1 when a step did not (its logs are kept), 2 on a
# usage error, 77 when moto is missing.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bindir=
while [ $# -gt 0 ]; do
    case $1 in
    --binary-dir) bindir=${2:?--binary-dir needs a folder}; shift 2 ;;
    -h | --help) sed -n '2,21s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo-ecs: unknown argument '$1' (usage: demo.sh [--binary-dir DIR])" >&2; exit 2 ;;
    esac
done
bindir=$(cd "${bindir:-$here/../../build}" 2>/dev/null && pwd) || {
    echo "demo-ecs: no build folder; run 'make demo-ecs', or pass --binary-dir DIR" >&2
    exit 2
}
if [ ! -x "$bindir/kanaria" ]; then
    echo "demo-ecs: $bindir/kanaria is missing; run 'make demo-ecs' (it builds it)" >&2
    exit 2
fi
for c in git curl python3 sha256sum; do
    if ! command -v "$c" >/dev/null; then
        echo "demo-ecs: '$c' is not installed; run 'make deps'" >&2
        exit 2
    fi
done
. "$here/../../tests/aws/moto.sh"
if ! moto_find; then
    echo "demo-ecs: SKIPPED: $moto_missing."
    echo "  The ECS demo runs on moto, the AWS emulator (pip install 'moto[server]' boto3)."
    [ "${CI:-}" = true ] && exit 1
    exit 77
fi
kanaria() { "$bindir/kanaria" "$@"; } # the client commands (serve runs as its own process: see below)

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
    printf '\n%sdemo-ecs: %s%s\n' "$bold" "$*" "$plain" >&2
    failed=1
    exit 1
}

# ---- the temporary folder, and stopping what runs in it ----------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kanaria-demo-ecs.XXXXXX")
failed=0
kanaria_pid=
feed_pid=
moto_pid=
proxy_pid=
stop() { # PID: SIGTERM, then up to 5 seconds for it to go
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}
finish() {
    local rc=$?
    stop "$feed_pid"
    stop "$kanaria_pid"
    stop "$proxy_pid"
    stop "$moto_pid"
    if [ "$rc" -ne 0 ] || [ "$failed" = 1 ]; then
        if [ -f "$tmp/kanaria.log" ]; then
            say "--- the last lines of kanaria's log ($tmp/kanaria.log)"
            grep -v 'level=debug' "$tmp/kanaria.log" | tail -n 30 || true
        fi
        say "demo-ecs: stopped; its logs are kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

wait_until() { # DESCRIPTION SECONDS COMMAND...: run COMMAND every 0.2s until it succeeds
    local what=$1 secs=$2
    shift 2
    for _ in $(seq 1 $((secs * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "$what did not happen within ${secs}s"
}

# ---- moto: the AWS world -----------------------------------------------------------------------

step "Setting up in $tmp"
say "    moto emulates the AWS APIs (ECS, Elastic Load Balancing, CloudWatch, IAM) on this machine."
say "    It checks every request's SigV4 signature against an IAM user and that user's policy,"
say "    as AWS does. It runs no container and routes no request: the ALB's weights are read"
say "    back from its API, and the request and 5xx counts the ALB would report to CloudWatch"
say "    are written by this demo."
moto_start "$tmp" || fail "moto_server did not start"
moto_env --endpoint "$moto_url" setup >"$tmp/env.json" 2>"$tmp/setup.log" ||
    fail "the AWS world could not be set up: $(tail -n 3 "$tmp/setup.log")"
e() { moto_env --env "$tmp/env.json" get "$1"; }
moto_proxy_start "$tmp" || fail "the counts proxy did not start"
say "    moto             $moto_url (ECS cluster kanaria-demo; ALB 'web' with its listener on :80)"
say "    IAM user         kanaria, with the minimal policy of the README (key in the environment)"
say "    kanaria reaches moto through $proxy_url, which adds to ECS task sets the task counts"
say "    moto does not keep (a set that started at once); everything else passes unchanged."

weights() { # the listener's forward actions, as DescribeListeners/DescribeRules read them back
    moto_env --env "$tmp/env.json" weights | python3 -c '
import json, sys
w = json.load(sys.stdin)
names = {"default": "default action      ", "path": "rule /api/*         ",
         "host": "rule shop.example.com", "foreign": "rule /legacy/* (another service)"}
for k in ("default", "path", "host", "foreign"):
    ws = w[k]["weights"]
    print("%s  %s" % (names[k], ", ".join("%s %s" % (t, ws[t]) for t in sorted(ws, key=lambda t: -ws[t]))))'
}

# ---- the Git remote and kanaria ------------------------------------------------------------------

api_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export KANARIA_ADDR="http://127.0.0.1:$api_port"
KANARIA_TOKEN="kn-demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export KANARIA_TOKEN
sed -e "s|@DATA_DIR@|$tmp/data|" -e "s|@REPO_DIR@|$tmp/shop.git|" -e "s|@API_PORT@|$api_port|" \
    -e "s|@TOKEN_SHA256@|$(printf %s "$KANARIA_TOKEN" | sha256sum | cut -d' ' -f1)|" \
    "$here/kanaria.yaml" >"$tmp/kanaria.yaml"

git init -q --bare -b main "$tmp/shop.git"
git init -q -b main "$tmp/work"
git -C "$tmp/work" remote add origin "$tmp/shop.git"
cp -r "$here/repo/shop" "$tmp/work/"
# The example's ARNs and network ids, replaced by moto's.
app_dir=$tmp/work/shop
sed -i -e "s|arn:aws:elasticloadbalancing:[^ ]*targetgroup/shop-blue/[0-9a-f]*|$(e targetGroups.primary)|" \
    -e "s|arn:aws:elasticloadbalancing:[^ ]*targetgroup/shop-green/[0-9a-f]*|$(e targetGroups.canary)|" \
    "$app_dir/app.kanaria.yaml"
sed -i -e "s|subnets: \[.*\]|subnets: [$(e subnets)]|" -e "s|securityGroups: \[.*\]|securityGroups: [$(e securityGroup)]|" \
    "$app_dir/servicedef.yaml"
task_sets() {
    moto_env --env "$tmp/env.json" ecs kanaria-demo shop | python3 -c '
import json, sys
for t in sorted(json.load(sys.stdin)["taskSets"], key=lambda t: t["status"], reverse=True):
    print("%-8s %-8s %3d%%  target group %s" % (t["status"], t["taskDefinition"].rsplit("/", 1)[1],
          t["scale"], ",".join(t["targetGroups"])))'
}
dev_git() {
    git -C "$tmp/work" -c user.name="Dev Eloper" -c user.email=dev@example.com \
        -c commit.gpgsign=false "$@"
}
commit_and_push() { # MESSAGE IMAGE_TAG: prints the commit
    sed -i "s|image: public.ecr.aws/nginx/nginx:.*|image: public.ecr.aws/nginx/nginx:$2|" "$app_dir/taskdef.yaml"
    dev_git commit -qam "$1"
    dev_git push -q origin main
    dev_git rev-parse HEAD
}
cp "$here/../quickstart/watch.py" "$tmp/watch.py"
export T0=$t0
follow() { python3 "$tmp/watch.py" shop "$1" "$2" "$3"; } # COMMIT EXPECT SECONDS

# The CloudWatch counts the ALB would report, every second: 50 requests a second per target
# group, SHARE of the canary's answered 5xx.
feed() { # SHARE
    stop "$feed_pid"
    "$moto_py" "$moto_here/moto_env.py" --env "$tmp/env.json" feed --canary-5xx "$1" \
        >>"$tmp/feed.log" 2>&1 &
    feed_pid=$!
}

export HOME=$tmp AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=$proxy_url
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE AWS_REGION \
    AWS_DEFAULT_REGION AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
AWS_ACCESS_KEY_ID=$(e kanaria.accessKeyId)
AWS_SECRET_ACCESS_KEY=$(e kanaria.secretAccessKey)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
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

step "1/3  The first commit creates the ECS service"
say "    shop/servicedef.yaml is CreateService's input, shop/taskdef.yaml RegisterTaskDefinition's."
say "    The first deployment is a quick sync: the service (EXTERNAL deployment controller) and"
say "    a task set at 100% on the primary target group, made the service's primary."
dev_git add -A
dev_git commit -qm "shop, nginx 1.25"
dev_git push -q origin main
show 'git commit -m "shop, nginx 1.25" && git push'
follow "$(dev_git rev-parse HEAD)" SUCCESS 60 || fail "the service was not created"
say "    The service's task sets (DescribeServices):"
task_sets | indent
say "    The listener (the rules forward to both target groups already, the canary at 0):"
weights | indent
feed 0
say "    From now on the demo writes the ALB's counts to CloudWatch every second: 50 requests"
say "    per target group, none of them 5xx."

# ---- 2. a healthy canary -----------------------------------------------------------------------

step "2/3  nginx 1.26: a canary that passes the analysis, then a person approves it"
commit=$(commit_and_push "shop, nginx 1.26" 1.26)
show 'git commit -am "shop, nginx 1.26" && git push'
follow "$commit" WAIT_APPROVAL 120 || fail "1.26 did not reach WAIT_APPROVAL"
say "    The canary task set runs beside the primary:"
task_sets | indent
say "    Every forward action to the pair now sends 20% to the canary; the rule of the other"
say "    service is as it was:"
weights | indent
show "KANARIA_TOKEN=kn-demo-… kanaria approve shop"
kanaria approve shop | indent || fail "the approval was refused"
follow "$commit" SUCCESS 60 || fail "1.26 was not promoted"
say "    1.26 is the primary; the canary's and the old primary's task sets are deleted:"
task_sets | indent
weights | indent

# ---- 3. a bad canary ---------------------------------------------------------------------------

step "3/3  nginx 1.27-broken: its canary answers 30% 5xx; kanaria rolls back by itself"
feed 0.3
say "    The demo now writes 15 of the canary's 50 requests a second as HTTPCode_Target_5XX_Count."
commit=$(commit_and_push "shop, nginx 1.27-broken" 1.27-broken)
show 'git commit -am "shop, nginx 1.27-broken" && git push'
follow "$commit" FAILURE 120 || fail "1.27-broken was not rolled back"
reason=$(kanaria history shop --json | python3 -c 'import json, sys
print(next(d["reason"] for d in json.load(sys.stdin)["deployments"] if d["commit"] == sys.argv[1]))' "$commit")
say "    Why, as kanaria recorded it:"
say "      $reason"
grep -q "analysis" <<<"$reason" || fail "1.27-broken was rolled back, but not by the analysis"
say "    The weights went back to the primary first, then the canary task set was deleted:"
weights | indent
task_sets | indent
show "kanaria history shop"
kanaria history shop | indent

step "Done in $(($(date +%s) - t0))s: the service created, 1.26 canaried, approved and promoted, 1.27-broken rolled back"
