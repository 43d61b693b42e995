#!/usr/bin/env bash
# The web UI in a real browser: Debian's chromium, driven by npm playwright-core (never a
# downloaded browser), against a real `kanaria serve` on the local platform, set up as the
# quickstart is (examples/quickstart/): a Git remote holding hello, HAProxy run by kanaria, a real
# Prometheus scraping HAProxy's exporter, steady load through HAProxy. The scenarios are
# tests/ui/ui.test.mjs (node:test); axe-core checks every page in both colour schemes.
#
#   ui.sh KANARIA KANARIA_HELLO KANARIA_LOAD BUILD_DIR
#
# The npm packages (tests/ui/package-lock.json) are installed with `npm ci` into
# BUILD_DIR/ui-tests when missing or when the lock changed; screenshots of every page in both
# themes go to BUILD_DIR/ui-shots. Without node, npm, chromium, haproxy or prometheus: SKIPPED
# (exit 77), a failure when CI=true. KANARIA_CHROMIUM names another chromium binary.
set -uo pipefail

abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
bin=$(abs "$1")
hello=$(abs "$2")
load=$(abs "$3")
build=$(abs "$4")
src=$(cd "$(dirname "$0")/../.." && pwd)
modules=$build/ui-tests
shots=$build/ui-shots
chromium=${KANARIA_CHROMIUM:-/usr/bin/chromium}

skip() {
    echo "SKIPPED: $*"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: CI=true and $*"
        exit 1
    fi
    exit 77
}

[ -x "$chromium" ] || skip "$chromium not found (tests/deps.sh installs chromium)"
command -v node >/dev/null 2>&1 || skip "node not found (tests/deps.sh installs nodejs)"
command -v npm >/dev/null 2>&1 || skip "npm not found (tests/deps.sh installs npm)"
for c in haproxy prometheus git curl python3; do
    command -v "$c" >/dev/null 2>&1 || skip "$c not found (tests/deps.sh installs it)"
done
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' ||
    skip "node $(node --version) is older than 18"

mkdir -p "$modules"
if [ ! -d "$modules/node_modules/playwright-core" ] ||
    ! cmp -s "$src/tests/ui/package-lock.json" "$modules/package-lock.json"; then
    cp "$src/tests/ui/package.json" "$src/tests/ui/package-lock.json" "$modules/"
    echo "ui: npm ci in $modules"
    if ! (cd "$modules" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit \
        --no-fund --loglevel=error); then
        rm -f "$modules/package-lock.json" # so the next run installs again
        echo "FAIL: npm ci of the browser test packages failed"
        exit 1
    fi
fi
# the tests run from beside their packages (ES modules resolve node_modules from their folder)
cp "$src/tests/ui/"*.mjs "$modules/"

. "$src/tests/integration/lib.sh"
tmp=$(mktemp -d)
pid=
prom_pid=
load_pid=
node_pid=
# node (and the chromium it drives) stopped too when ctest's timeout or ^C ends this script
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; cleanup' EXIT
trap 'exit 143' TERM INT

# A failed wait of the set-up ends the test at once: the scenarios need all of it.
setup_failed() {
    echo "FAIL: $*"
    failures=$((failures + 1))
    summary
    exit 1
}

# ---- the quickstart, with users and short analysis intervals ----------------------------------

bind=$(free_port)
api=$(free_port)
metrics=$(free_port)
prom=$(free_port)
ports=$((30000 + RANDOM % 20000))
export KANARIA_ADDR="http://127.0.0.1:$api"
alice_token="kn-ui-alice-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
victor_token="kn-ui-victor-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

q=$src/examples/quickstart
sed -e "s|@DATA_DIR@|$tmp/data|g" -e "s|@REPO_DIR@|$tmp/upstream.git|g" \
    -e "s|@API_PORT@|$api|g" -e "s|@METRICS_PORT@|$metrics|g" -e "s|@PROMETHEUS_PORT@|$prom|g" \
    -e "s|@PORT_MIN@|$ports|g" -e "s|@PORT_MAX@|$((ports + 49))|g" -e '/^users:/,$d' \
    "$q/kanaria.yaml" >"$tmp/kanaria.yaml"
cat >>"$tmp/kanaria.yaml" <<YAML
users:
  - {name: alice, role: approver, tokenSha256: $(hash "$alice_token")}
  - {name: victor, role: viewer, tokenSha256: $(hash "$victor_token")}
YAML
sed -e "s|@METRICS_PORT@|$metrics|g" "$q/prometheus.yml" >"$tmp/prometheus.yml"

prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address="127.0.0.1:$prom" >>"$tmp/prom.log" 2>&1 &
prom_pid=$!

# the developer's clone of the Git remote; the app is the quickstart's hello, its analysis
# shorter (12s, every 3s) and its approver alice
command git init -q --bare -b main "$tmp/upstream.git"
command git init -q -b main "$tmp/upstream"
git remote add origin "$tmp/upstream.git"
cp -r "$q/repo/hello" "$tmp/upstream/"
sed -i -e "s|127.0.0.1:8080|127.0.0.1:$bind|" -e "s|command: \[kanaria_hello|command: [$hello|" \
    "$tmp/upstream/hello/service.yaml"
sed -i -e 's|duration: 15s|duration: 12s|' -e 's|interval: 4s|interval: 3s|' \
    -e 's|approvers: \[demo\]|approvers: [alice]|' "$tmp/upstream/hello/app.kanaria.yaml"
grep -q 'approvers: \[alice\]' "$tmp/upstream/hello/app.kanaria.yaml" ||
    setup_failed "the quickstart's app has no 'approvers: [demo]' to replace"

# push.sh MESSAGE VERSION ERROR_RATE: what the scenarios call to push a commit; prints it
cat >"$tmp/push.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
g() { git -C "$tmp/upstream" -c user.name="Dev Eloper" -c user.email=dev@example.com -c commit.gpgsign=false "\$@"; }
sed -i -e "s|^  env: .*|  env: {VERSION: \$2, ERROR_RATE: \"\$3\"}|" "$tmp/upstream/hello/service.yaml"
g commit -qam "\$1"
g push -q origin main
g rev-parse HEAD
EOF
chmod +x "$tmp/push.sh"

git add -A
git commit -qm "hello v1"
git push -q origin main
start
for _ in $(seq 1 150); do
    curl -sf "$KANARIA_ADDR/healthz" >/dev/null && break
    sleep 0.2
done
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS" 60 ||
    setup_failed "hello v1 was not deployed ($(sql "select reason from deployments where id = 1"))"
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$prom/-/ready" >/dev/null && break
    sleep 0.2
done
"$load" --rate 40 "http://127.0.0.1:$bind/" >"$tmp/load.log" 2>&1 &
load_pid=$!
sleep 3 # Prometheus has the primary's numbers before the first canary

# ---- the scenarios ------------------------------------------------------------------------------

mkdir -p "$shots"
rm -f "$shots"/*.png
started=$(date +%s)
UI_URL=$KANARIA_ADDR UI_ALICE_TOKEN=$alice_token UI_VICTOR_TOKEN=$victor_token \
    UI_PUSH=$tmp/push.sh UI_SHOTS=$shots UI_CHROMIUM=$chromium UI_APP=hello UI_REPO=quickstart \
    timeout 420 node --test --test-reporter=spec "$modules/ui.test.mjs" \
    > >(grep -v 'unexpected operator') 2>&1 & # Debian's chromium launcher's harmless noise
node_pid=$!
wait "$node_pid"
rc=$?
node_pid=
check "the browser scenarios pass (node --test exit $rc, $(($(date +%s) - started))s)" "$rc"
echo "ui: screenshots in $shots: $(cd "$shots" && ls -- *.png 2>/dev/null | tr '\n' ' ')"

stop_kanaria
