#!/usr/bin/env bash
# kanaria serve under systemd's Type=notify protocol, with a unix datagram socket of this test as
# $NOTIFY_SOCKET (what systemd binds): READY=1 comes only once the API answers and the
# repository was fetched and its app planned; WATCHDOG=1 keeps coming at half of WATCHDOG_USEC;
# SIGHUP is RELOADING=1 (with MONOTONIC_USEC) then READY=1; SIGTERM is STOPPING=1, exit 0.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
rpid=
trap cleanup EXIT

api=$(free_port)
web=$(free_port)
metrics=$(free_port)
ports=$((30000 + RANDOM % 20000))
mkdir -p "$tmp/upstream/web"
git init -q -b main
cat >"$tmp/upstream/web/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: web}
spec:
  manifests: [service.yaml]
YAML
test_service "$tmp/upstream/web" web v1 "$web" 1
git add -A && git commit -q -m "web v1"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 20))}
repositories:
  - name: deploy
    url: file://$tmp/upstream
    branch: main
    pollInterval: 1m
YAML

# The service manager's end: one line per datagram (newlines as '|'); on the first READY=1 it
# also writes what was true at that moment: /healthz's status, the repository's fetch time and
# the number of deployments in the store.
python3 - "$tmp/notify" "$tmp/notify.log" "$api" "$tmp/data/kanaria.db" <<'PY' &
import socket, sqlite3, sys, urllib.request
path, out, api, db = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(60)
seen_ready = False
with open(out, "w") as f:
    f.write("listening\n"); f.flush()
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        f.write(msg.replace("\n", "|") + "\n"); f.flush()
        if "READY=1" in msg.split("\n") and not seen_ready:
            seen_ready = True
            try:
                code = urllib.request.urlopen("http://127.0.0.1:%s/healthz" % api, timeout=5).status
            except Exception as e:
                code = "error"
            try:
                c = sqlite3.connect(db, timeout=5)
                fetched = c.execute("SELECT fetched_at FROM repositories WHERE name='deploy'").fetchone()
                deps = c.execute("SELECT count(*) FROM deployments").fetchone()[0]
            except Exception as e:
                fetched, deps = None, "error %s" % e
            f.write("at-ready healthz=%s fetched=%s deployments=%s\n" % (
                code, fetched[0] if fetched else 0, deps)); f.flush()
PY
rpid=$!
for _ in $(seq 1 50); do grep -q listening "$tmp/notify.log" 2>/dev/null && break; sleep 0.1; done

# count_msgs LINE: how many datagrams were exactly LINE
count_msgs() { grep -cx "$1" "$tmp/notify.log"; }
# wait_msg DESCRIPTION PATTERN [MIN]: until MIN (1) lines match the extended regex, 30 s at most
wait_msg() {
    local n
    for _ in $(seq 1 150); do
        n=$(grep -cE "$2" "$tmp/notify.log")
        [ "$n" -ge "${3:-1}" ] && return 0
        sleep 0.2
    done
    echo "  waited for $1: $n of ${3:-1}"
    return 1
}

NOTIFY_SOCKET=$tmp/notify WATCHDOG_USEC=400000 "$bin" serve -c "$tmp/kanaria.yaml" >>"$tmp/log" 2>&1 &
pid=$!

wait_msg "READY=1" '^READY=1\|STATUS=serving: every repository fetched and planned once$'
check "READY=1 once every repository was fetched and planned" $?
wait_msg "the state at READY=1" '^at-ready '
line=$(grep '^at-ready ' "$tmp/notify.log")
[[ $line =~ healthz=200\  ]]
check "the API answered when READY=1 came ($line)" $?
[[ $line =~ fetched=[1-9][0-9]*\  ]]
check "the repository had been fetched when READY=1 came ($line)" $?
[[ $line =~ deployments=[1-9] ]]
check "the app's deployment had been planned when READY=1 came ($line)" $?
[ "$(count_msgs 'READY=1|STATUS=serving: every repository fetched and planned once')" -eq 1 ]
check "READY=1 is sent once" $?

wait_msg "3 WATCHDOG=1" '^WATCHDOG=1$' 3
check "WATCHDOG=1 keeps coming at half of WATCHDOG_USEC" $?

kill -HUP "$pid"
wait_msg "READY=1 after the reload" '^READY=1\|STATUS=serving: reloaded$'
check "SIGHUP: READY=1 once reloaded" $?
grep -v '^WATCHDOG=1$' "$tmp/notify.log" | grep -A1 -E '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$' |
    tail -1 | grep -qx 'READY=1|STATUS=serving: reloaded'
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1" $?

kill -TERM "$pid"
wait "$pid"
check "kanaria exits 0 on SIGTERM" $?
pid=
grep -qx 'STOPPING=1' "$tmp/notify.log"
check "SIGTERM: STOPPING=1" $?
[ "$failures" -eq 0 ] || { echo "--- notify.log"; grep -v '^WATCHDOG=1$' "$tmp/notify.log"; }
summary
