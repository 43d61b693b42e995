#!/usr/bin/env bash
# https remotes: a Git server on loopback (git http-backend behind Python's TLS server) whose
# certificate is signed by a test CA. Without `caFile` the fetch fails and says to set it; with
# it the branch is fetched; a repository that answers 401 and has no credentials says which key
# to set.
set -uo pipefail
bin=$1
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
spid=
trap cleanup EXIT

cd "$tmp" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=kanaria test CA" 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" \
        2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext &&
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
        -extfile ext 2>/dev/null
check "a test CA and a server certificate for 127.0.0.1" $?

mkdir -p "$tmp/upstream" "$tmp/root"
command git -C "$tmp/upstream" init -q -b main
git commit -q --allow-empty -m first
head1=$(git rev-parse HEAD)
command git clone -q --bare "$tmp/upstream" "$tmp/root/deploy.git"
command git clone -q --bare "$tmp/upstream" "$tmp/root/locked.git"

port=$(free_port)
python3 "$(dirname "$0")/../fakes/git_https.py" "$port" "$tmp/root" srv.pem srv.key &
spid=$!
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$(free_port)
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$(free_port)"}
repositories:
  - name: untrusted
    url: https://127.0.0.1:$port/deploy.git
    pollInterval: 1s
  - name: trusted
    url: https://127.0.0.1:$port/deploy.git
    caFile: $tmp/ca.pem
    pollInterval: 1s
  - name: locked
    url: https://127.0.0.1:$port/locked.git
    caFile: $tmp/ca.pem
    pollInterval: 1s
YAML

sed "s|caFile: $tmp/ca.pem|caFile: $tmp/nope.pem|" "$tmp/kanaria.yaml" >"$tmp/bad.yaml"
"$bin" serve -c "$tmp/bad.yaml" >"$tmp/bad.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] && grep -q "bad.yaml:16:13: repositories\[1\]: 'caFile' '$tmp/nope.pem' cannot be read: No such file or directory" "$tmp/bad.out"
check "a caFile that cannot be read is a located error at start ($(head -c 300 "$tmp/bad.out"))" $?

start
wait_for "trusted fetched" "select head from repositories where name='trusted'" "$head1" 30
check "an https remote signed by a private CA is fetched with caFile" $?
for _ in $(seq 1 100); do
    err=$(sql "select error from repositories where name='untrusted'")
    [ -n "$err" ] && break
    sleep 0.2
done
[[ $err == "fetching https://127.0.0.1:$port/deploy.git: "*"certificate"*"for a private CA set 'caFile' for repository 'untrusted' in kanaria.yaml" ]]
check "without caFile the fetch fails and says to set caFile ($err)" $?
[ -z "$(sql "select head from repositories where name='untrusted'")" ]
check "nothing is fetched from an untrusted server" $?
for _ in $(seq 1 100); do
    err=$(sql "select error from repositories where name='locked'")
    [ -n "$err" ] && break
    sleep 0.2
done
[ "$err" = "fetching https://127.0.0.1:$port/locked.git: authentication required: set 'credentials.tokenFile' (and 'credentials.username' when the server needs one) for repository 'locked' in kanaria.yaml" ]
check "a remote that needs credentials says which key to set ($err)" $?
stop_kanaria
