#!/usr/bin/env bash
# Fetch deadlines: a remote on loopback that accepts connections and never answers. Its fetch is
# stopped when no data came for fetchStallTimeout, or when the whole fetch passed fetchTimeout;
# the repository's status says so and the fetch is retried with backoff, while a file://
# repository beside it keeps being fetched. SIGHUP while such a fetch hangs kills it and fetches
# again; SIGTERM exits 0 within seconds and leaves no fetch process behind.
set -uo pipefail
bin=$1
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
spid=
trap cleanup EXIT

# The silent remote: accepts every connection, reads nothing, answers nothing, and appends a
# line to $tmp/accepted per connection.
silent=$(free_port)
python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    with open(sys.argv[2], "a") as f:
        f.write("x\n")' "$silent" "$tmp/accepted" &
spid=$!
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$silent") 2>/dev/null && break
    sleep 0.1
done
: >"$tmp/accepted"

mkdir -p "$tmp/upstream"
command git -C "$tmp/upstream" init -q -b main
git commit -q --allow-empty -m first
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$(free_port)
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$(free_port)"}
repositories:
  - name: good
    url: file://$tmp/upstream
    pollInterval: 1s
  - name: stalled
    url: http://127.0.0.1:$silent/stalled.git
    pollInterval: 1s
    fetchStallTimeout: 2s
  - name: slow
    url: http://127.0.0.1:$silent/slow.git
    pollInterval: 1s
    fetchTimeout: 3s
YAML

start
wait_for "good fetched" "select head != '' from repositories where name='good'" "1" 20
check "a file:// repository is fetched beside the silent ones" $?
kill -0 "$pid" 2>/dev/null
check "kanaria runs with fetchTimeout and fetchStallTimeout" $?
wait_for "stalled failing" "select error from repositories where name='stalled'" \
    "fetching http://127.0.0.1:$silent/stalled.git: no data from the remote for 2s (fetchStallTimeout), stopped" 20
check "a fetch that receives nothing is stopped after fetchStallTimeout, and its status says so" $?
wait_for "slow failing" "select error from repositories where name='slow'" \
    "fetching http://127.0.0.1:$silent/slow.git: not done after 3s (fetchTimeout), stopped" 20
check "a fetch that runs past fetchTimeout is stopped, and its status says so" $?
for _ in $(seq 1 100); do
    grep -q "repo=stalled .*fetch failed (attempt 2" "$tmp/log" && break
    sleep 0.2
done
grep -q "repo=stalled.*fetch failed (attempt 2, retrying in 2s)" "$tmp/log"
check "a stopped fetch is retried with backoff" $?
git commit -q --allow-empty -m second
head2=$(git rev-parse HEAD)
wait_for "good follows" "select head from repositories where name='good'" "$head2" 20
check "the file:// repository keeps being fetched" $?

# Wait for a fresh connection to the silent remote, then list the fetch processes.
hung_fetches() {
    local n
    n=$(wc -l <"$tmp/accepted")
    for _ in $(seq 1 100); do
        [ "$(wc -l <"$tmp/accepted")" -gt "$n" ] && break
        sleep 0.1
    done
    ps -o pid= -o args= --ppid "$pid" | awk '/__fetch/ {print $1}'
}

# SIGHUP while a fetch hangs: it is killed, and every repository is fetched again.
before=$(hung_fetches)
[ -n "$before" ]
check "a fetch hangs before SIGHUP" $?
kill -HUP "$pid"
left=1
for _ in $(seq 1 50); do
    left=0
    for c in $before; do
        kill -0 "$c" 2>/dev/null && left=1
    done
    [ "$left" -eq 0 ] && break
    sleep 0.1
done
check "SIGHUP kills the fetches in flight" $left
git commit -q --allow-empty -m third
head3=$(git rev-parse HEAD)
wait_for "good after reload" "select head from repositories where name='good'" "$head3" 20
check "after SIGHUP the repositories are fetched again" $?

# SIGTERM while a fetch hangs.
children=$(hung_fetches)
[ -n "$children" ]
check "a fetch hangs, in its own process" $?
held=0
for c in $children; do
    ls -l "/proc/$c/fd" 2>/dev/null | grep -q 'kanaria\.lock\|kanaria\.db' && held=1
done
check "the fetch process holds neither kanaria.lock nor the store" $held
shared=0
for c in $children; do
    shares_sockets "$c" "$pid" && shared=1
done
check "the fetch process holds none of kanaria's sockets" $shared
kill -TERM "$pid"
exited=1
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { exited=0; break; }
    sleep 0.1
done
check "SIGTERM during a hung fetch exits within 10s" $exited
if [ "$exited" -eq 0 ]; then
    wait "$pid"
    check "and exits 0" $?
    pid=
fi
left=0
for c in $children; do
    kill -0 "$c" 2>/dev/null && left=1
done
check "no fetch process is left behind" $left
summary
