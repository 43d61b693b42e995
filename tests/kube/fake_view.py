"""What the fake API server (tests/fakes/kube_fake.py) holds and saw, read back for the
integration tests and the demo, so that their checks never rest on kanaria's own word.

    fake_view.py --url URL [--cacert CA] objects [--app APP]   one line per object: KIND NS/NAME
    fake_view.py --url URL get KIND NS NAME      the stored object, as JSON
    fake_view.py --url URL weights NS ROUTE      the HTTPRoute's backendRefs per rule:
                                                 "web:90,web-canary:10 | web:90,web-canary:10"
    fake_view.py --url URL requests [--since N] [--all]
                                                 the requests, one a line: "N METHOD PATH QUERY
                                                 STATUS [WEIGHTS]" (QUERY "-" when there is
                                                 none; WEIGHTS for an HTTPRoute sent, as
                                                 "web:90,web-canary:10|web:90,web-canary:10");
                                                 kanaria's only unless --all (not kubectl's,
                                                 curl's, Prometheus's, another field manager's)
    fake_view.py --url URL count                 the number of the last request the fake recorded
    fake_view.py --url URL sent DIR              every object kanaria applied, one JSON file each
    fake_view.py --url URL control VERB [JSON]   POST /_fake/VERB with the JSON body

Standard library only. Exit 0, or 1 with the reason on stderr.
"""
import argparse
import json
import os
import ssl
import sys
import urllib.parse
import urllib.request


CONTEXT = None  # the test CA's (--cacert), for a fake on HTTPS


def call(url, method="GET", body=None):
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=CONTEXT) as r:
        raw = r.read().decode()
    return json.loads(raw) if raw.strip() else None


def items(answer):
    if isinstance(answer, dict):
        for k in ("items", "objects", "requests", "log"):
            if isinstance(answer.get(k), list):
                return answer[k]
    return answer if isinstance(answer, list) else []


def objects(url):
    return items(call(url + "/_fake/objects"))


def meta(o):
    return o.get("metadata") or {}


def requests_log(url):
    out = []
    for i, r in enumerate(items(call(url + "/_fake/requests"))):
        path = r.get("path", "")
        query = r.get("query", "")
        if isinstance(query, dict):
            query = urllib.parse.urlencode(
                [(k, v) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])])
        if "?" in path and not query:
            path, query = path.split("?", 1)
        r = dict(r, path=path, query=query, n=int(r.get("seq", i + 1)))
        out.append(r)
    return out


def user_agent(r):
    h = r.get("headers") or {}
    for k, v in h.items():
        if k.lower() == "user-agent":
            return v
    return r.get("user_agent") or r.get("userAgent") or ""


def is_kanaria(r):
    """kanaria's requests: not the fake's own routes, not another client's (kubectl, curl,
    Prometheus, python3-kubernetes), and no field manager but kanaria's."""
    if r["path"].startswith(("/_fake", "/metrics", "/openapi")):
        return False
    ua = user_agent(r).lower()
    if ua.startswith(("kubectl", "curl", "prometheus", "openapi-generator", "python")):
        return False
    q = urllib.parse.parse_qs(r["query"])
    return q.get("fieldManager", ["kanaria"])[0] == "kanaria"


def weights(o):
    rules = []
    for rule in (o.get("spec") or {}).get("rules") or []:
        refs = ["%s:%s" % (b.get("name"), b.get("weight", 1)) for b in rule.get("backendRefs") or []]
        rules.append(",".join(refs))
    return " | ".join(rules)


def find(url, kind, ns, name):
    for o in objects(url):
        m = meta(o)
        if o.get("kind") == kind and m.get("name") == name and (m.get("namespace") or "") == ns:
            return o
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--cacert", help="the CA of a fake on HTTPS")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("objects")
    s.add_argument("--app")
    s = sub.add_parser("get")
    s.add_argument("kind")
    s.add_argument("ns")
    s.add_argument("name")
    s = sub.add_parser("weights")
    s.add_argument("ns")
    s.add_argument("route")
    s = sub.add_parser("requests")
    s.add_argument("--since", type=int, default=0)
    s.add_argument("--all", action="store_true")
    sub.add_parser("count")
    s = sub.add_parser("sent")
    s.add_argument("dir")
    s = sub.add_parser("control")
    s.add_argument("verb")
    s.add_argument("body", nargs="?", default="{}")
    a = p.parse_args()
    url = a.url.rstrip("/")
    global CONTEXT
    if a.cacert:
        CONTEXT = ssl.create_default_context(cafile=a.cacert)
    try:
        if a.cmd == "objects":
            rows = []
            for o in objects(url):
                m = meta(o)
                if a.app and (m.get("labels") or {}).get("kanaria.dev/app") != a.app:
                    continue
                rows.append("%s %s/%s" % (o.get("kind"), m.get("namespace") or "-", m.get("name")))
            print("\n".join(sorted(rows)))
        elif a.cmd == "get":
            o = find(url, a.kind, a.ns, a.name)
            if o is None:
                print("no %s %s/%s in the fake" % (a.kind, a.ns, a.name), file=sys.stderr)
                return 1
            print(json.dumps(o, indent=1, sort_keys=True))
        elif a.cmd == "weights":
            o = find(url, "HTTPRoute", a.ns, a.route)
            if o is None:
                print("no HTTPRoute %s/%s in the fake" % (a.ns, a.route), file=sys.stderr)
                return 1
            print(weights(o))
        elif a.cmd == "requests":
            for r in requests_log(url):
                if r["n"] <= a.since:
                    continue
                if a.all or is_kanaria(r):
                    body = r.get("body")
                    extra = ""
                    if isinstance(body, dict) and body.get("kind") == "HTTPRoute":
                        extra = " " + weights(body).replace(" ", "")
                    print("%s %s %s %s %s%s" % (r["n"], r.get("method"), r["path"], r["query"] or "-",
                                                r.get("status", "-"), extra))
        elif a.cmd == "count":
            log = requests_log(url)
            print(log[-1]["n"] if log else 0)
        elif a.cmd == "sent":
            os.makedirs(a.dir, exist_ok=True)
            n = 0
            for r in requests_log(url):
                if r.get("method") != "PATCH" or not is_kanaria(r):
                    continue
                body = r.get("body")
                if isinstance(body, str):
                    try:
                        body = json.loads(body)
                    except ValueError:
                        continue
                if not isinstance(body, dict) or "kind" not in body:
                    continue
                n += 1
                with open(os.path.join(a.dir, "%04d-%s.json" % (n, body["kind"])), "w") as f:
                    json.dump(body, f)
            print(n)
        elif a.cmd == "control":
            print(json.dumps(call(url + "/_fake/" + a.verb, "POST", a.body)))
    except (OSError, ValueError) as e:
        print("fake_view: %s: %s" % (a.cmd, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
