#!/usr/bin/env bash
# Notification channels against a real `kanaria serve` and a local receiver (loopback): a Slack
# bot (Block Kit, chat.postMessage then chat.update of the same message per deployment), a Slack
# incoming webhook, Microsoft Teams (an Adaptive Card), PagerDuty Events v2 (trigger on a
# failure, resolve on the next success) and a templated webhook, each checked against its
# documented JSON shape; a dead channel (a listener that never answers) delays none of them;
# kill -9 of kanaria while events wait loses none and each reaches the receiver once by its
# delivery id.
set -uo pipefail
bin=$1
server=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pid=
rpid=
spid=
trap cleanup EXIT

api=$(free_port)
bind=$(free_port)
metrics=$(free_port)
recv=$(free_port)
dead=$(free_port)
ports=$((30000 + RANDOM % 20000))
printf '%s\n' "xoxb-bot-token-5e1f" >"$tmp/slack-token"
printf '%s\n' "R0UTINGKEY9d3c" >"$tmp/pd-key"

# The receiver: one JSON line per request in recv.log (path, headers kanaria sets, body).
# /hook answers after 0.3 s, so that events wait in kanaria's queue when it is killed.
python3 - "$recv" "$tmp/recv.log" <<'PY' &
import http.server, json, sys, threading, time
port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
posts = [0]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        path = self.path
        status, answer = 200, {}
        if path.endswith("/chat.postMessage"):
            with lock:
                posts[0] += 1
                ts = "1700000000.%06d" % posts[0]
            answer = {"ok": True, "channel": "C0CHAN", "ts": ts}
        elif path.endswith("/chat.update"):
            answer = {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        elif path == "/pd":
            status, answer = 202, {"status": "success", "message": "Event processed"}
        elif path == "/hook":
            time.sleep(0.3)
        rec = {"path": path, "status": status, "body": body,
               "delivery": self.headers.get("X-Kanaria-Delivery"),
               "event": self.headers.get("X-Kanaria-Event"),
               "auth": self.headers.get("Authorization"),
               "ctype": self.headers.get("Content-Type"), "answer": answer}
        with lock, open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        out = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
rpid=$!
# The dead channel: a listener that never accepts, so a request connects and never gets an answer.
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128)
while True: time.sleep(60)' "$dead" &
spid=$!
for p in "$recv" "$dead"; do
    for _ in $(seq 1 50); do
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$p" 2>/dev/null && break
        sleep 0.1
    done
done

mkdir -p "$tmp/upstream/hello"
cat >"$tmp/kanaria.yaml" <<YAML
dataDir: $tmp/data
listen: 127.0.0.1:$api
externalUrl: https://kanaria.example.com/
platforms:
  - name: local
    type: local
    haproxy: {metricsBind: "127.0.0.1:$metrics"}
    ports: {min: $ports, max: $((ports + 50))}
repositories:
  - {name: deploy, url: "file://$tmp/upstream", branch: main, pollInterval: 1s}
notifications:
  - {name: dead, url: "http://127.0.0.1:$dead/never"}
  - name: bot
    type: slack
    url: http://127.0.0.1:$recv/slack/api
    tokenFile: $tmp/slack-token
    channel: "#deploys"
  - {name: incoming, type: slack, url: "http://127.0.0.1:$recv/slack-in", events: [SUCCEEDED]}
  - {name: teams, type: teams, url: "http://127.0.0.1:$recv/teams", events: [SUCCEEDED, FAILED, ROLLED_BACK]}
  - {name: pager, type: pagerduty, url: "http://127.0.0.1:$recv/pd", tokenFile: $tmp/pd-key}
  - name: hook
    url: http://127.0.0.1:$recv/hook
    template: '{"event": "{{type}}", "id": {{id}}, "deployment": {{deployment}}, "app": "{{app}}", "why": "{{reason}}"{{#deploymentUrl}}, "link": "{{deploymentUrl}}"{{/deploymentUrl}}}'
YAML
git init -q -b main
cat >"$tmp/upstream/hello/app.kanaria.yaml" <<YAML
apiVersion: kanaria.dev/v1
kind: Application
metadata: {name: hello}
spec:
  manifests: [service.yaml]
  pipeline:
    - name: SCRIPT_RUN
      with: {run: "test ! -f $tmp/fail"}
    - name: SYNC
YAML
service() { test_service "$tmp/upstream/hello" hello "$1" "$bind" 1; } # version
got() { # PYTHON-EXPR over the receiver's lines (list `r`): print the result
    python3 -c 'import json,os,sys
r = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
print(eval(sys.argv[2]))' "$tmp/recv.log" "$1"
}
wait_got() { # DESCRIPTION EXPR [SECONDS]
    local until=$((SECONDS + ${3:-30}))
    while [ $SECONDS -lt $until ]; do
        [ "$(got "$2")" = True ] && return 0
        sleep 0.2
    done
    echo "  waited for $1; the receiver got:"
    cut -c1-300 "$tmp/recv.log" 2>/dev/null
    return 1
}
service v1
git add -A && git commit -qm "hello v1"
sha1=$(git rev-parse HEAD)

# 1. v1 deploys; every healthy channel gets its events while the dead one still waits for its
#    first answer
start
wait_for "v1 deployed" "select status from deployments where id = 1" "SUCCESS"
check "the first commit deploys" $?
wait_got "the templated webhook gets SUCCEEDED" \
    'any(x["path"] == "/hook" and x["body"] and x["body"]["event"] == "SUCCEEDED" for x in r)'
check "the templated webhook gets SUCCEEDED of v1" $?
wait_got "Slack and Teams get SUCCEEDED" \
    'any(x["path"] == "/slack-in" for x in r) and any(x["path"] == "/teams" for x in r) and any(x["path"].endswith("/chat.update") and "SUCCEEDED" in x["body"]["text"] for x in r)'
check "the Slack bot, the incoming webhook and Teams get SUCCEEDED of v1" $?
! grep -q 'notify name=dead.*giving up' "$tmp/log"
check "meanwhile the dead channel has not given up its first event" $?

# Each payload against its documented shape.
cat >"$tmp/shapes.py" <<'PY'
import json, re, sys
r = [json.loads(l) for l in open(sys.argv[1])]
what, fails = sys.argv[2], []
def need(cond, msg):
    if not cond:
        fails.append(msg)
def text_obj(t, most):
    need(isinstance(t, dict) and t.get("type") in ("plain_text", "mrkdwn"), "text object type: %r" % t)
    need(isinstance(t.get("text"), str) and 0 < len(t["text"]) <= most, "text object text: %r" % t)
def block_kit(m):
    # Slack's Block Kit message: "text" (the fallback) and "blocks" (1..50), each with a "type";
    # header: plain_text of at most 150; section: "text" (<= 3000) or "fields" (<= 10, each
    # <= 2000); context: "elements"; actions: elements, a button with plain_text "text" and "url"
    need(isinstance(m.get("text"), str) and m["text"].startswith("kanaria: "), "text: %r" % m.get("text"))
    bl = m.get("blocks")
    need(isinstance(bl, list) and 1 <= len(bl) <= 50, "blocks: %r" % bl)
    for b in bl or []:
        t = b.get("type")
        if t == "header":
            text_obj(b.get("text"), 150); need(b["text"]["type"] == "plain_text", "header type")
        elif t == "section":
            need("text" in b or "fields" in b, "section without text or fields")
            if "text" in b: text_obj(b["text"], 3000)
            need(len(b.get("fields", [])) <= 10, "section fields")
            for f in b.get("fields", []): text_obj(f, 2000)
        elif t == "context":
            need(len(b.get("elements", [])) >= 1, "context elements")
        elif t == "actions":
            btn = b["elements"][0]
            need(btn.get("type") == "button" and btn.get("url"), "button: %r" % btn)
            text_obj(btn.get("text"), 75)
        else:
            fails.append("block type %r" % t)
if what == "slack":
    bot = [x for x in r if x["path"].startswith("/slack/api/")]
    need(len(bot) >= 2, "bot requests: %d" % len(bot))
    posts = {}
    for x in bot:
        m = x["body"]
        block_kit(m)
        need(x["auth"] == "Bearer xoxb-bot-token-5e1f", "bot auth: %r" % x["auth"])
        need(x["ctype"].startswith("application/json"), "content type %r" % x["ctype"])
        d = re.search(r"\(deployment (\d+),", m["text"])
        if not d:
            continue
        d = int(d.group(1))
        if x["path"].endswith("/chat.postMessage"):
            need(m.get("channel") == "#deploys" and "ts" not in m, "post: %r" % m.get("channel"))
            need(d not in posts, "deployment %d posted twice" % d)
            posts[d] = x["answer"]["ts"]
        else:
            need(x["path"].endswith("/chat.update"), "path %s" % x["path"])
            need(d in posts and m.get("ts") == posts[d] and m.get("channel") == "C0CHAN",
                 "update of deployment %d: ts %r (posted %r)" % (d, m.get("ts"), posts.get(d)))
    need(1 in posts, "deployment 1 was posted")
    link = "https://kanaria.example.com/#/deployments/1"
    need(any(link in json.dumps(x["body"]) for x in bot), "a link to " + link)
    inc = [x for x in r if x["path"] == "/slack-in"]
    need(len(inc) >= 1, "incoming webhook requests")
    for x in inc:
        block_kit(x["body"])
        need("channel" not in x["body"] and x["auth"] is None, "incoming: no channel, no token")
elif what == "teams":
    t = [x for x in r if x["path"] == "/teams"]
    need(len(t) >= 1, "teams requests")
    for x in t:
        # Teams incoming webhooks / Workflows: {"type": "message", "attachments": [{"contentType":
        # "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": AdaptiveCard}]}
        m = x["body"]
        need(m.get("type") == "message", "type")
        a = m.get("attachments")
        need(isinstance(a, list) and len(a) == 1, "attachments")
        a = a[0]
        need(a.get("contentType") == "application/vnd.microsoft.card.adaptive", "contentType")
        need("contentUrl" in a and a["contentUrl"] is None, "contentUrl")
        c = a.get("content", {})
        need(c.get("type") == "AdaptiveCard" and c.get("$schema") == "http://adaptivecards.io/schemas/adaptive-card.json", "card")
        need(re.match(r"^1\.\d+$", c.get("version", "")), "version")
        need(len(c.get("body", [])) >= 1 and all("type" in e for e in c["body"]), "card body")
        need(c.get("fallbackText", "").startswith("kanaria: "), "fallbackText")
elif what == "pagerduty":
    p = [x for x in r if x["path"] == "/pd"]
    trig = [x["body"] for x in p if x["body"]["event_action"] == "trigger"]
    res = [x["body"] for x in p if x["body"]["event_action"] == "resolve"]
    need(len(trig) == 1 and len(res) == 1, "one trigger, one resolve: %d, %d" % (len(trig), len(res)))
    need(p and p[-1]["body"]["event_action"] == "resolve", "the resolve comes last")
    for b in trig + res:
        need(b.get("routing_key") == "R0UTINGKEY9d3c", "routing_key")
        need(b.get("dedup_key") == "kanaria/deploy/hello", "dedup_key %r" % b.get("dedup_key"))
    for b in trig:
        pl = b.get("payload", {})
        need(pl.get("summary") and len(pl["summary"]) <= 1024, "summary")
        need(pl.get("source") == "kanaria", "source")
        need(pl.get("severity") in ("critical", "error", "warning", "info"), "severity")
        need(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", pl.get("timestamp", "")), "timestamp")
        need(pl.get("class") in ("FAILED", "ROLLED_BACK"), "class %r" % pl.get("class"))
elif what == "hook":
    h = [x for x in r if x["path"] == "/hook"]
    for x in h:
        need(x["body"] is not None, "the template gives JSON")
        need(str(x["body"]["id"]) == x["delivery"], "delivery id %r for event %r" % (x["delivery"], x["body"]["id"]))
        need(x["body"]["event"] == x["event"], "X-Kanaria-Event")
    need(any(x["body"].get("link") == "https://kanaria.example.com/#/deployments/1" for x in h), "link")
print("; ".join(fails[:5]) if fails else "ok")
sys.exit(1 if fails else 0)
PY
shapes() { python3 "$tmp/shapes.py" "$tmp/recv.log" "$1"; }

# 2. v2 fails its script; kanaria is killed (-9) while events wait for the slow webhook
touch "$tmp/fail"
service v2
git commit -qam "hello v2 (failing)"
wait_got "an event of deployment 2 at the webhook" \
    'any(x["path"] == "/hook" and x["body"]["deployment"] == 2 for x in r)' 60
check "the webhook gets the first event of v2" $?
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
last=$(got 'max(int(x["delivery"]) for x in r if x["path"] == "/hook")')
waiting=$(sql "select count(*) from events where id > $last and type != 'STAGE_LOG'")
start
wait_for "v2 failed" "select status from deployments where id = 2" "FAILURE" 60
check "after the restart v2 ends FAILURE ($waiting events were waiting at the kill)" $?
wait_got "PagerDuty triggered" 'any(x["path"] == "/pd" and x["body"]["event_action"] == "trigger" for x in r)'
check "the failure triggers a PagerDuty incident" $?

# 3. v3 succeeds: the incident is resolved
rm -f "$tmp/fail"
service v3
git commit -qam "hello v3"
wait_for "v3 deployed" "select status from deployments where id = 3" "SUCCESS" 60
check "v3 deploys" $?
wait_got "PagerDuty resolved" 'any(x["path"] == "/pd" and x["body"]["event_action"] == "resolve" for x in r)'
check "the next success resolves it" $?
wait_got "the webhook catches up" \
    'any(x["path"] == "/hook" and x["body"]["deployment"] == 3 and x["event"] == "SUCCEEDED" for x in r)' 60
check "the webhook gets SUCCEEDED of v3" $?

out=$(shapes slack)
check "Slack bot and incoming webhook payloads are Block Kit; one message per deployment, then chat.update with its ts ($out)" $?
out=$(shapes teams)
check "Teams payloads are Adaptive Cards in the message/attachments shape ($out)" $?
out=$(shapes pagerduty)
check "PagerDuty gets one trigger and one resolve in the Events v2 shape ($out)" $?
out=$(shapes hook)
check "the templated webhook's bodies are JSON, with the delivery id of their event ($out)" $?

# No loss, no duplicate across the kill: every event from the first delivered on reached the
# webhook, and a repeat carries the same delivery id as the first.
first=$(got 'min(int(x["delivery"]) for x in r if x["path"] == "/hook")')
want=$(sql "select group_concat(id, ' ') from (select id from events where id >= $first and type != 'STAGE_LOG' order by id)")
have=$(got '" ".join(str(i) for i in sorted(set(int(x["delivery"]) for x in r if x["path"] == "/hook")))')
[ -n "$want" ] && [ "$have" = "$want" ]
check "the webhook has every event once by delivery id across kill -9 ($have)" $?
dups=$(got 'len([x for x in r if x["path"] == "/hook"]) - len(set(x["delivery"] for x in r if x["path"] == "/hook"))')
echo "  repeats after kill -9 (same delivery id): $dups"

# the dead channel was tried and is still retrying, and no secret is in the log
for _ in $(seq 1 100); do
    grep -q 'notify name=dead.*attempt 2 in' "$tmp/log" && break
    sleep 0.2
done
grep -q 'notify name=dead.*attempt 2 in' "$tmp/log"
check "the dead channel's first attempt timed out and is retried" $?
! grep -q -e 'xoxb-bot-token-5e1f' -e 'R0UTINGKEY9d3c' "$tmp/log"
check "neither the bot token nor the routing key is in the log" $?

stop_kanaria
