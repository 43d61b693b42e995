#!/usr/bin/env bash
# The quickstart: a real canary that succeeds and a bad one that rolls back on its own.
#
#     examples/quickstart/demo.sh [--binary-dir DIR] [--keep]
#
# DIR holds the built kanaria, kanaria_hello and kanaria_load (default: build). It needs git,
# haproxy, prometheus, curl and python3 in PATH; `make demo` installs them and builds first.
# Everything happens in a new temporary folder: a Git remote holding the app, Prometheus scraping
# the HAProxy that kanaria runs, `kanaria serve`, and steady load through HAProxy. Then:
#   1. the first commit deploys hello v1 (a quick sync);
#   2. v2 runs as a canary, passes the analysis, waits for approval, is approved and promoted;
#   3. v3 answers 30% errors: the analysis fails and kanaria rolls it back by itself; its
#      postmortem draft (kanaria postmortem ID) shows the timeline, the numbers and the rollback.
# Exit 0 when all of that happened as told, 1 when a step did not (its logs are kept), 2 on a
# usage error. Everything it started is stopped at the end, unless --keep: then it stays up and
# the folder's stop.sh stops it.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bindir=
keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --binary-dir) bindir=${2:?--binary-dir needs a folder}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument '$1' (usage: demo.sh [--binary-dir DIR] [--keep])" >&2; exit 2 ;;
    esac
done
bindir=$(cd "${bindir:-$here/../../build}" 2>/dev/null && pwd) || {
    echo "demo: no build folder; run 'make demo', or pass --binary-dir DIR" >&2
    exit 2
}
for f in kanaria kanaria_hello kanaria_load; do
    if [ ! -x "$bindir/$f" ]; then
        echo "demo: $bindir/$f is missing; run 'make demo' (it builds it)" >&2
        exit 2
    fi
done
for c in git haproxy prometheus curl python3 sha256sum; do
    if ! command -v "$c" >/dev/null; then
        echo "demo: '$c' is not installed; run 'make demo' (it installs what is missing)" >&2
        exit 2
    fi
done
# kanaria runs the app as `kanaria_hello` from PATH (see repo/hello/service.yaml).
export PATH="$bindir:$PATH"

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
show() { printf '    $ %s\n' "$*"; } # a command as a person would type it
indent() { sed 's/^/      /'; }          # its output
fail() {
    printf '\n%sdemo: %s%s\n' "$bold" "$*" "$plain" >&2
    failed=1
    exit 1
}

# ---- the temporary folder, and stopping what runs in it ----------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kanaria-demo.XXXXXX")
mkdir -p "$tmp/pids"
failed=0
cat >"$tmp/stop.sh" <<EOF
#!/usr/bin/env bash
# Stops everything the kanaria quickstart started in $tmp, then removes that folder.
# Run with --keep-files to keep the folder (its logs).
d=$tmp
stop() { # PID: SIGTERM, then up to 5 seconds for it to go
    kill -TERM "\$1" 2>/dev/null || return 0
    for _ in \$(seq 1 50); do kill -0 "\$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "\$1" 2>/dev/null || true
}
for p in load kanaria; do
    [ -f "\$d/pids/\$p.pid" ] && stop "\$(cat "\$d/pids/\$p.pid")"
done
# The app's instances and HAProxy run in their own sessions so that they outlive kanaria.
for f in \$(find "\$d/data/local" -name '*.json' ! -name apps.json 2>/dev/null); do
    pid=\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid", ""))' "\$f" 2>/dev/null)
    if [ -n "\$pid" ]; then
        kill -TERM -- "-\$pid" 2>/dev/null
        kill -TERM "\$pid" 2>/dev/null
    fi
done
for f in \$(find "\$d/data/local" -name haproxy.pid 2>/dev/null); do
    pid=\$(head -n1 "\$f")
    [ -n "\$pid" ] && stop "\$pid"
done
[ -f "\$d/pids/prometheus.pid" ] && stop "\$(cat "\$d/pids/prometheus.pid")"
[ "\${1:-}" = --keep-files ] || rm -rf "\$d"
echo "kanaria quickstart stopped"
EOF
chmod +x "$tmp/stop.sh"

interrupted=0
finish() {
    local rc=$?
    if [ "$keep" = 1 ] && [ "$rc" -eq 0 ]; then
        return
    fi
    if [ "$interrupted" = 1 ]; then
        "$tmp/stop.sh" >/dev/null 2>&1 || true
        say "demo: interrupted; everything it started is stopped"
    elif [ "$rc" -ne 0 ] || [ "$failed" = 1 ]; then
        if [ -f "$tmp/kanaria.log" ]; then
            say "--- the last lines of kanaria's log ($tmp/kanaria.log)"
            grep -v 'level=debug' "$tmp/kanaria.log" | tail -n 30 || true
        fi
        "$tmp/stop.sh" --keep-files >/dev/null 2>&1 || true
        say "demo: stopped; its logs are kept in $tmp"
    else
        "$tmp/stop.sh" >/dev/null 2>&1 || true
    fi
}
trap finish EXIT
trap 'interrupted=1; exit 130' INT TERM

# ---- ports: the usual ones when they are free, else any free one ------------------------------

port() { # PREFERRED
    python3 - "$1" <<'PY'
import socket, sys
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
print(free(int(sys.argv[1])) or free(0))
PY
}
app_port=$(port 8080)
api_port=$(port 7070)
prom_port=$(port 9090)
metrics_port=$(port 8404)
port_min=$((20000 + RANDOM % 9000))
port_max=$((port_min + 49))
export KANARIA_ADDR="http://127.0.0.1:$api_port"
KANARIA_TOKEN="kn-demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export KANARIA_TOKEN
token_sha256=$(printf %s "$KANARIA_TOKEN" | sha256sum | cut -d' ' -f1)

fill() { # TEMPLATE: the template with its @NAME@ placeholders filled in
    sed -e "s|@DATA_DIR@|$tmp/data|g" -e "s|@REPO_DIR@|$tmp/hello.git|g" \
        -e "s|@API_PORT@|$api_port|g" -e "s|@METRICS_PORT@|$metrics_port|g" \
        -e "s|@PROMETHEUS_PORT@|$prom_port|g" -e "s|@PORT_MIN@|$port_min|g" \
        -e "s|@PORT_MAX@|$port_max|g" -e "s|@TOKEN_SHA256@|$token_sha256|g" "$1"
}

# wait_until DESCRIPTION SECONDS COMMAND...: run COMMAND every 0.2s until it succeeds
wait_until() {
    local what=$1 secs=$2
    shift 2
    for _ in $(seq 1 $((secs * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "$what did not happen within ${secs}s"
}

# ---- live progress: new events and analysis results of one deployment ---------------------------

# watch.py (beside this script) prints what kanaria does for one deployment as it happens.
cp "$here/watch.py" "$tmp/watch.py"
export T0=$t0

follow() { # COMMIT EXPECT SECONDS
    python3 "$tmp/watch.py" hello "$1" "$2" "$3"
}

# ---- the Git remote, the developer's clone and their commits -----------------------------------

dev_git() {
    git -C "$tmp/work" -c user.name="Dev Eloper" -c user.email=dev@example.com \
        -c commit.gpgsign=false "$@"
}
# commit_and_push MESSAGE VERSION ERROR_RATE: change hello's env, commit, push; prints the commit
commit_and_push() {
    sed -i -e "s|^  env: .*|  env: {VERSION: $2, ERROR_RATE: \"$3\"}|" "$tmp/work/hello/service.yaml"
    dev_git commit -qam "$1"
    dev_git push -q origin main
    dev_git rev-parse HEAD
}
# what the app answers through HAProxy, N times
responses() { # N
    for _ in $(seq 1 "$1"); do
        curl -s -m 2 "http://127.0.0.1:$app_port/" || echo "(no answer)"
    done
}
# the answers the load generator saw in its last N seconds, by version
recent_traffic() { # N
    tail -n "$1" "$tmp/load.log" | sed 's/^.*requests: *//' | tr ',' '\n' | awk '
        NF == 2 { n[$1] += $2; total += $2 }
        END { for (v in n) printf "%s %d%% (%d)\n", v, 100 * n[v] / total, n[v] }' | sort | paste -sd' '
}

# ---- start everything --------------------------------------------------------------------------

step "Setting up in $tmp"
git init -q --bare -b main "$tmp/hello.git"
git init -q -b main "$tmp/work"
git -C "$tmp/work" remote add origin "$tmp/hello.git"
cp -r "$here/repo/hello" "$tmp/work/"
sed -i "s|127.0.0.1:8080|127.0.0.1:$app_port|" "$tmp/work/hello/service.yaml"
fill "$here/kanaria.yaml" >"$tmp/kanaria.yaml"
fill "$here/prometheus.yml" >"$tmp/prometheus.yml"
say "    Git remote       file://$tmp/hello.git (the app is in hello/)"

prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus" \
    --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
echo $! >"$tmp/pids/prometheus.pid"
wait_until "Prometheus starting" 30 curl -sf "http://127.0.0.1:$prom_port/-/ready"
say "    Prometheus       http://127.0.0.1:$prom_port (scrapes HAProxy's exporter every second)"

"$bindir/kanaria" serve -c "$tmp/kanaria.yaml" >"$tmp/kanaria.log" 2>&1 &
echo $! >"$tmp/pids/kanaria.pid"
wait_until "kanaria starting" 30 curl -sf "$KANARIA_ADDR/healthz"
say "    kanaria serve    API on $KANARIA_ADDR, user 'demo' (approver), log in kanaria.log"

# ---- 1. the first commit -----------------------------------------------------------------------

step "1/3  The first commit deploys hello v1"
say "    A developer pushes the app: hello/app.kanaria.yaml (the pipeline) and hello/service.yaml"
say "    (what runs: 2 instances of kanaria_hello, VERSION=v1). kanaria polls the remote every"
say "    second; an app's first deployment is a quick sync: start it, put it behind HAProxy."
dev_git add -A
dev_git commit -qm "hello v1"
dev_git push -q origin main
show 'git commit -m "hello v1" && git push'
follow "$(dev_git rev-parse HEAD)" SUCCESS 60 || fail "v1 was not deployed"
say "    hello v1 answers on http://127.0.0.1:$app_port/:"
responses 2 | indent
responses 1 | grep -qx "hello from v1" || fail "hello v1 does not answer through HAProxy"

"$bindir/kanaria_load" --rate 40 "http://127.0.0.1:$app_port/" >"$tmp/load.log" 2>&1 &
echo $! >"$tmp/pids/load.pid"
say "    Steady load from now on: 40 requests a second through HAProxy (load.log); a few"
say "    seconds of it first, so that Prometheus has the primary's numbers."
wait_until "the load reaching v1" 30 grep -q "v1 " "$tmp/load.log"
sleep 4

# ---- 2. a healthy canary -----------------------------------------------------------------------

step "2/3  hello v2: a canary that passes the analysis, then a person approves it"
say "    The env changes, so this is a pipeline: one v2 instance starts as the canary and takes"
say "    30% of the traffic; every 4s for 15s kanaria asks Prometheus for the canary's error"
say "    rate (at most 5%) and compares the canary's errors with the primary's."
commit=$(commit_and_push "hello v2" v2 0)
show 'git commit -am "hello v2" && git push'
follow "$commit" WAIT_APPROVAL 120 || fail "v2 did not reach WAIT_APPROVAL"
say "    The analysis passed; the canary waits for an approver. Traffic in the last 5 seconds:"
say "      $(recent_traffic 5)"
show "kanaria status hello"
"$bindir/kanaria" status hello | indent
show "KANARIA_TOKEN=kn-demo-… kanaria approve hello"
"$bindir/kanaria" approve hello | indent || fail "the approval was refused"
follow "$commit" SUCCESS 60 || fail "v2 was not promoted"
out=$(responses 6)
say "    v2 is the primary now; six requests through HAProxy:"
indent <<<"$out"
[ "$(sort -u <<<"$out")" = "hello from v2" ] || fail "not every answer comes from v2"

# ---- 3. a bad canary ---------------------------------------------------------------------------

step "3/3  hello v3 answers 30% errors: the analysis fails and kanaria rolls back by itself"
say "    Nobody has to watch: once a check fails (here, a second evaluation out of bounds),"
say "    kanaria sends the traffic back to the primary and removes the canary."
commit=$(commit_and_push "hello v3 (30% errors)" v3 0.3)
show 'git commit -am "hello v3 (30% errors)" && git push'
follow "$commit" FAILURE 120 || fail "v3 was not rolled back"
reason=$("$bindir/kanaria" history hello --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["deployments"][0]["reason"])')
say "    Why, as kanaria recorded it:"
say "      $reason"
grep -q "analysis" <<<"$reason" || fail "v3 was rolled back, but not by the analysis"
out=$(responses 6)
say "    Traffic is back on v2:"
indent <<<"$out"
[ "$(sort -u <<<"$out")" = "hello from v2" ] || fail "after the rollback not every answer comes from v2"
show "kanaria history hello"
"$bindir/kanaria" history hello | indent
id=$("$bindir/kanaria" history hello --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["deployments"][0]["id"])')
say "    kanaria wrote down what happened: a blameless postmortem draft of the rollback, with"
say "    its timeline, the failing check's numbers, the impact and the rollback's steps."
show "kanaria postmortem $id"
pm=$("$bindir/kanaria" postmortem "$id") || fail "no postmortem of the rolled-back v3"
indent <<<"$pm"
for section in "## Timeline" "## Detection" "## Impact" "## Resolution" "## Root cause"; do
    grep -q "^$section" <<<"$pm" || fail "the postmortem has no '$section' section"
done
grep -q "| first failing evaluation: check '" <<<"$pm" &&
    grep -q "| rollback finished: SUCCESS |" <<<"$pm" ||
    fail "the postmortem lacks the failing evaluation or the rollback's end"

step "Done in $(($(date +%s) - t0))s: v1 deployed, v2 canaried, approved and promoted, v3 rolled back (with its postmortem)"
if [ "$keep" = 1 ]; then
    say "    Everything keeps running (--keep):"
    say "      the web UI       $KANARIA_ADDR/  (sign in with the KANARIA_TOKEN below)"
    say "      the app          curl http://127.0.0.1:$app_port/"
    say "      the API          export KANARIA_ADDR=$KANARIA_ADDR KANARIA_TOKEN=$KANARIA_TOKEN"
    say "                       $bindir/kanaria status hello"
    say "      Prometheus       http://127.0.0.1:$prom_port/graph"
    say "      the Git remote   git clone $tmp/hello.git  (edit hello/service.yaml, commit, push)"
    say "      logs             $tmp/kanaria.log, $tmp/load.log"
    say "    Stop it all with:  $tmp/stop.sh"
fi
