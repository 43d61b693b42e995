#!/usr/bin/env bash
# The web UI's files as a real `kanaria serve` sends them (users declared, no repository): /,
# /app.js and /app.css without a token, byte for byte what the build wrote (ui/build.mjs into
# DIST), with their content types, ETag and 304, gzip when accepted (decoding to the same bytes),
# no-cache, CSP and X-Frame-Options on the page; nosniff and no-referrer on every answer of the
# listener (API, 401, 404, 405, /healthz, /metrics, the event stream, h2o's own 413); paths that
# climb out (../, encoded) reach nothing else; a POST to / is 405.
# Usage: ui_assets.sh KANARIA DIST
set -uo pipefail
bin=$1
dist=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
trap cleanup EXIT

api=$(free_port)
export KANARIA_ADDR="http://127.0.0.1:$api"
csp="default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
users:
  - {name: vic, role: viewer, tokenSha256: $(hash tok-vic)}
YAML

# get PATH [CURL ARGS...]: headers into $tmp/h, body into $tmp/b; prints the status
get() {
    local p=$1
    shift
    rm -f "$tmp/h" "$tmp/b" # curl writes no body file for an answer without one
    curl -s --path-as-is --max-time 10 -D "$tmp/h" -o "$tmp/b" -w '%{http_code}' "$@" \
        "$KANARIA_ADDR$p"
}
# hdr NAME: the value of header NAME (any case) of the last answer, "" when absent
hdr() {
    tr -d '\r' <"$tmp/h" | awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" '
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) {
            v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }'
}
# head_req PATH: a HEAD request on a connection of its own, closed after; prints the answer's
# head, and fails when anything follows it
head_req() {
    python3 - "$api" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"HEAD %s HTTP/1.1\r\nHost: kanaria\r\nConnection: close\r\n\r\n" % sys.argv[2].encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, rest = data.partition(b"\r\n\r\n")
sys.stdout.write(head.decode("latin-1") + "\r\n")
sys.exit(1 if rest else 0)
PY
}
# common WHAT: the two headers every answer carries, on the last answer
common() {
    [ "$(hdr X-Content-Type-Options)" = nosniff ]
    check "$1 has X-Content-Type-Options: nosniff" $?
    [ "$(hdr Referrer-Policy)" = no-referrer ]
    check "$1 has Referrer-Policy: no-referrer" $?
}

for f in index.html app.js app.css; do
    [ -s "$dist/$f" ]
    check "the build wrote $dist/$f" $?
done

start
for _ in $(seq 1 50); do
    [ "$(get /healthz)" = 200 ] && break
    sleep 0.2
done

# ---- the three files -------------------------------------------------------------------------
for spec in "/ index.html text/html" "/app.js app.js text/javascript" "/app.css app.css text/css"; do
    read -r path file type <<<"$spec"
    status=$(get "$path")
    [ "$status" = 200 ]
    check "GET $path without a token is 200 (got $status)" $?
    cmp -s "$tmp/b" "$dist/$file"
    check "GET $path is $dist/$file byte for byte" $?
    got=$(hdr Content-Type)
    [ "$got" = "$type; charset=utf-8" ]
    check "GET $path has Content-Type $type; charset=utf-8 (got '$got')" $?
    [ "$(hdr Cache-Control)" = no-cache ]
    check "GET $path has Cache-Control: no-cache" $?
    [ "$(hdr Vary)" = Accept-Encoding ]
    check "GET $path has Vary: Accept-Encoding" $?
    [ -z "$(hdr Content-Encoding)" ]
    check "GET $path without Accept-Encoding is not compressed" $?
    common "GET $path"
    etag=$(hdr ETag)
    want="\"$(sha256sum "$dist/$file" | cut -c1-32)\""
    [ "$etag" = "$want" ]
    check "GET $path has the strong ETag $want of the build's file (got '$etag')" $?
    if [ "$path" = / ]; then
        got=$(hdr Content-Security-Policy)
        [ "$got" = "$csp" ]
        check "GET / has the Content-Security-Policy (got '$got')" $?
        [ "$(hdr X-Frame-Options)" = DENY ]
        check "GET / has X-Frame-Options: DENY" $?
    fi

    # revalidation
    status=$(get "$path" -H "If-None-Match: $etag")
    [ "$status" = 304 ] && [ ! -s "$tmp/b" ]
    check "GET $path with If-None-Match: $etag is 304 without a body (got $status)" $?
    [ "$(hdr ETag)" = "$etag" ]
    check "the 304 of $path names the ETag" $?
    common "the 304 of $path"
    status=$(get "$path" -H "If-None-Match: \"stale\", W/$etag")
    [ "$status" = 304 ]
    check "GET $path with If-None-Match listing W/ the ETag is 304 (got $status)" $?
    status=$(get "$path" -H 'If-None-Match: "0000"')
    [ "$status" = 200 ] && cmp -s "$tmp/b" "$dist/$file"
    check "GET $path with another ETag is 200 with the file (got $status)" $?

    # gzip
    status=$(get "$path" -H 'Accept-Encoding: gzip, deflate, br')
    [ "$status" = 200 ] && [ "$(hdr Content-Encoding)" = gzip ]
    check "GET $path with Accept-Encoding gzip is gzip-encoded (got $status)" $?
    [ "$(hdr Vary)" = Accept-Encoding ]
    check "the gzip answer of $path has Vary: Accept-Encoding" $?
    gzip -dc <"$tmp/b" >"$tmp/plain" && cmp -s "$tmp/plain" "$dist/$file"
    check "the gzip body of $path decodes to $dist/$file" $?
    size=$(stat -c %s "$tmp/b")
    [ "$(hdr Content-Length)" = "$size" ]
    check "the gzip answer of $path has its Content-Length ($size)" $?
    gzetag=$(hdr ETag)
    [ -n "$gzetag" ] && [ "$gzetag" != "$etag" ]
    check "the gzip answer of $path has its own ETag (got '$gzetag')" $?
    status=$(get "$path" -H 'Accept-Encoding: gzip' -H "If-None-Match: $gzetag")
    [ "$status" = 304 ]
    check "GET $path with the gzip ETag is 304 (got $status)" $?
    status=$(get "$path" -H 'Accept-Encoding: gzip;q=0, identity')
    [ "$status" = 200 ] && [ -z "$(hdr Content-Encoding)" ] && cmp -s "$tmp/b" "$dist/$file"
    check "GET $path with gzip;q=0 is not compressed (got $status)" $?

    # HEAD: the headers, no body (read to the connection's end, as curl would not)
    head_req "$path" >"$tmp/h"
    status=$?
    grep -q '^HTTP/1.1 200' "$tmp/h" && [ "$(hdr Content-Length)" = "$(stat -c %s "$dist/$file")" ]
    check "HEAD $path is 200 with the file's Content-Length" $?
    [ "$status" = 0 ]
    check "HEAD $path has no body" $?
done

# a token does not matter to the files
status=$(get /app.js -H 'Authorization: Bearer not-a-token')
[ "$status" = 200 ]
check "GET /app.js with an unknown token is still 200 (got $status)" $?

# ---- methods and unknown paths ---------------------------------------------------------------
status=$(get / -X POST -H 'Content-Type: application/json' --data '{}')
[ "$status" = 405 ] && [ "$(hdr Allow)" = "GET, HEAD" ]
check "POST / is 405 with Allow: GET, HEAD (got $status)" $?
common "the 405"
status=$(get /app.js -X DELETE)
[ "$status" = 405 ]
check "DELETE /app.js is 405 (got $status)" $?
for p in /index.html /app.js.map /ui/ /apps /favicon.ico /api/v1/nothing; do
    status=$(get "$p")
    [ "$status" = 404 ] && grep -q '"error": "no such route' "$tmp/b"
    check "GET $p is the JSON 404 (got $status)" $?
done
common "the 404"

# ---- paths that climb out --------------------------------------------------------------------
# h2o normalizes the path (dot segments, escapes); whatever it makes of these, the answer is a
# 404 or one of the three files, never anything else
for p in "/../../etc/passwd" "/%2e%2e/%2e%2e/etc/passwd" "/..%2f..%2fetc%2fpasswd" \
    "/app.js/../../../etc/passwd" "/%2e%2e/%2e%2e%2fetc/passwd" "/..%5c..%5cetc%5cpasswd" \
    "//etc/passwd" "/%2fetc%2fpasswd" "/app.js%00.txt" "/./../app.css" "/%2e%2e/app.js" \
    "/..;/etc/passwd" "/.%2e/.%2e/kanaria.yaml"; do
    status=$(get "$p")
    ok=1
    if [ "$status" = 404 ]; then
        grep -q '"error": "no such route' "$tmp/b" && ok=0
    elif [ "$status" = 200 ]; then
        for f in index.html app.js app.css; do
            cmp -s "$tmp/b" "$dist/$f" && ok=0
        done
    fi
    ! grep -q -e 'root:' -e 'tokenSha256' "$tmp/b" && [ "$ok" = 0 ]
    check "GET $p is a 404 or one of the UI's files (got $status)" $?
done

# ---- every other answer of the listener --------------------------------------------------------
status=$(get /healthz)
[ "$status" = 200 ]
check "GET /healthz is 200 (got $status)" $?
common "/healthz"
status=$(get /api/v1/apps -H 'Authorization: Bearer tok-vic')
[ "$status" = 200 ] && [ "$(hdr Content-Type)" = application/json ]
check "GET /api/v1/apps with a token is JSON 200 (got $status)" $?
common "the API's JSON"
[ -z "$(hdr Content-Security-Policy)" ] && [ -z "$(hdr ETag)" ]
check "the API's JSON has no CSP nor ETag of the UI" $?
status=$(get /api/v1/apps)
[ "$status" = 401 ]
check "GET /api/v1/apps without a token is 401 (got $status)" $?
common "the 401"
status=$(get /metrics -H 'Authorization: Bearer tok-vic')
[ "$status" = 200 ]
check "GET /metrics is 200 (got $status)" $?
common "/metrics"
# the event stream never ends: its headers, then curl gives up
rm -f "$tmp/h"
curl -s --max-time 2 -D "$tmp/h" -o "$tmp/b" -H 'Authorization: Bearer tok-vic' \
    "$KANARIA_ADDR/api/v1/events"
grep -q '^HTTP/1.1 200' "$tmp/h" && [ "$(hdr Content-Type)" = text/event-stream ]
check "GET /api/v1/events is a 200 event stream" $?
common "the event stream"
# h2o's own refusal of a body over the webhook's cap, before kanaria's handler
status=$(get /api/v1/webhooks/git -X POST -H 'Content-Length: 999999999' --data x)
[ "$status" = 413 ]
check "a Content-Length over the cap is 413 (got $status)" $?
common "h2o's 413"

stop_kanaria
