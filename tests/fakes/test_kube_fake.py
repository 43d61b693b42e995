#!/usr/bin/env python3
"""
Self-test of tests/fakes/kube_fake.py (ctest kube_fake_selftest). Runs with Debian's
/usr/bin/python3 when there is one (the fake must need nothing but the standard library, and
Debian's python3-kubernetes lives there). Three parts:

  * raw HTTP checks of the semantics kanaria relies on (kubernetes.md sections 2, 3 and 8);
  * the installed kubectl as a real client: server-side apply with its default strict
    validation, get -w --output-watch-events, rollout status (success, and
    ProgressDeadlineExceeded → rc 1), relist after an in-stream 410, delete, NotFound;
    a TLS + bearer token run; a fresh HOME per run (kubectl caches discovery there);
  * Debian's python3-kubernetes: typed models decode a Deployment and a list, a watch stream
    from a resourceVersion, 404 ApiException, 422 for a missing fieldManager.

A client that is missing prints "SKIPPED: ..." (and fails when CI=true); exit 77 when no client
part ran at all.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
        os.path.realpath("/usr/bin/python3") and not os.environ.get("KUBE_FAKE_NO_REEXEC"):
    os.environ["KUBE_FAKE_NO_REEXEC"] = "1"
    os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "kube_fake.py")
FAILED = []
SKIPPED = []
TMP = tempfile.mkdtemp(prefix="kube-fake-test-")
PROCS = []


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        FAILED.append(what)


def skip(what):
    print("SKIPPED: %s" % what, flush=True)
    SKIPPED.append(what)


def start_fake(*extra, name="fake"):
    port_file = os.path.join(TMP, name + ".port")
    log = open(os.path.join(TMP, name + ".log"), "w")
    p = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--port-file", port_file] +
                         list(extra), stdout=log, stderr=subprocess.STDOUT)
    PROCS.append(p)
    deadline = time.time() + 15
    while time.time() < deadline:
        if os.path.exists(port_file):
            with open(port_file) as f:
                s = f.read().strip()
            if s:
                return int(s)
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("the fake did not start (see %s)" % log.name)


class Client:
    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def req(self, method, path, body=None, ctype="application/json", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h["Content-Type"] = ctype
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read().decode()
        c.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return r.status, dict(r.getheaders()), parsed

    def apply(self, path, obj, manager="kanaria", force=True, extra=""):
        q = "fieldManager=%s" % manager if manager else ""
        if force:
            q += "&force=true"
        return self.req("PATCH", path + "?" + q + extra, obj, "application/apply-patch+yaml")

    def control(self, what, body=None):
        s, _, b = self.req("POST" if body is not None else "GET", "/_fake/" + what, body)
        assert s == 200, (what, s, b)
        return b

    def wait(self, path, pred, timeout=10):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            s, _, last = self.req("GET", path)
            if s == 200 and pred(last):
                return last
            time.sleep(0.05)
        return None


class Watch:
    """A watch stream read on a thread from a raw socket (the chunked framing is checked here,
    http.client hides a missing last chunk): events land in self.events; self.done when it
    ends; self.clean tells whether it ended with the zero-length chunk."""

    def __init__(self, port, path, token=None):
        self.events, self.done, self.clean = [], threading.Event(), None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        auth = "Authorization: Bearer %s\r\n" % token if token else ""
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path, auth))
                          .encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline().decode()
        self.status = int(status.split()[1])
        self.headers = {}
        while True:
            line = self.f.readline().decode().strip()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip()] = v.strip()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        buf = b""
        self.clean = False
        try:
            if self.headers.get("Transfer-Encoding") != "chunked":
                n = int(self.headers.get("Content-Length", 0))
                self.body = self.f.read(n)
                return
            while True:
                size_line = self.f.readline()
                if not size_line:
                    break
                size = int(size_line.strip(), 16)
                data = self.f.read(size)
                self.f.readline()
                if size == 0:
                    self.clean = True
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.events.append(json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            self.done.set()

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in list(self.events):
                if pred(e):
                    return e
            if self.done.is_set():
                for e in self.events:
                    if pred(e):
                        return e
                return None
            time.sleep(0.02)
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
SVC = "/api/v1/namespaces/default/services"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"


def deployment(name, image, replicas=2, pds=None, labels=None):
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": name, "labels": labels or {"app": name}},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"containers": [{"name": "app", "image": image,
                                                        "ports": [{"containerPort": 8080}]}]}}}}
    if pds is not None:
        d["spec"]["progressDeadlineSeconds"] = pds
    return d


def service(name, app):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}


def complete(d):
    st, sp = d.get("status", {}), d["spec"]
    return st.get("observedGeneration", 0) >= d["metadata"]["generation"] and \
        st.get("updatedReplicas", 0) == sp["replicas"] and \
        st.get("replicas", 0) == sp["replicas"] and \
        st.get("availableReplicas", 0) == sp["replicas"]


def cond(d, t):
    return next((c for c in d.get("status", {}).get("conditions", []) if c["type"] == t), {})


# ---- raw HTTP ---------------------------------------------------------------------------------

def raw_checks(port):
    c = Client(port)
    s, h, b = c.req("GET", "/apis/apps/v1")
    check(s == 200 and any(r["name"] == "deployments" and r["kind"] == "Deployment"
                           for r in b["resources"]), "discovery /apis/apps/v1 lists deployments")
    s, h, b = c.req("GET", "/apis")
    names = [g["name"] for g in b["groups"]]
    check({"apps", "coordination.k8s.io", "gateway.networking.k8s.io",
           "networking.istio.io"} <= set(names), "/apis lists the groups: %s" % names)
    s, h, b = c.req("GET", "/apis/apps/v1/namespaces/default/widgets")
    check(s == 404 and b == "404 page not found\n" and h["Content-Type"].startswith("text/plain"),
          "an unknown resource type is the plain-text 404")
    s, h, b = c.req("GET", DEPLOY + "/nope")
    check(s == 404 and b["reason"] == "NotFound" and
          b["message"] == 'deployments.apps "nope" not found' and
          b["details"] == {"name": "nope", "group": "apps", "kind": "deployments"},
          "a missing object is a NotFound Status")

    s, _, b = c.apply("/apis/apps/v1/namespaces/nope/deployments/x", deployment("x", "a:1"))
    check(s == 404 and b["message"] == 'namespaces "nope" not found',
          "creating in a missing namespace is 404")

    # server-side apply
    d = deployment("api", "example/api:1.0", replicas=2)
    s, _, b = c.apply(DEPLOY + "/api", d, manager=None)
    check(s == 422 and b["reason"] == "Invalid" and "fieldManager: Required value" in b["message"],
          "apply without fieldManager is 422 Invalid: %s" % b.get("message"))
    s, _, b = c.apply(DEPLOY + "/other", d)
    check(s == 400 and "does not match the name on the URL" in b["message"],
          "apply with a name not the URL's is 400")
    bad = json.loads(json.dumps(d))
    bad["spec"]["replica"] = 2
    s, _, b = c.apply(DEPLOY + "/api", bad, extra="&fieldValidation=Strict")
    check(s == 400 and ".spec.replica: field not declared in schema" in b["message"],
          "Strict apply rejects an unknown spec field: %s" % b.get("message"))
    s, _, b = c.apply(DEPLOY + "/api", d, extra="&dryRun=All")
    check(s == 201 and c.req("GET", DEPLOY + "/api")[0] == 404, "dryRun=All stores nothing")
    s, _, b = c.apply(DEPLOY + "/api", d)
    check(s == 201 and b["metadata"]["generation"] == 1 and b["spec"]["strategy"]["rollingUpdate"]
          == {"maxUnavailable": "25%", "maxSurge": "25%"} and
          b["spec"]["progressDeadlineSeconds"] == 600 and
          b["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent",
          "apply creates (201) with Deployment defaults")
    rv1 = b["metadata"]["resourceVersion"]
    check(isinstance(rv1, str) and b["metadata"]["uid"] and b["metadata"]["creationTimestamp"],
          "resourceVersion is a string; uid and creationTimestamp are set")
    mf = b["metadata"]["managedFields"][0]
    check(mf["manager"] == "kanaria" and mf["operation"] == "Apply" and
          mf["fieldsType"] == "FieldsV1" and "f:replicas" in mf["fieldsV1"]["f:spec"],
          "managedFields has the Apply entry")
    s, _, b = c.apply(DEPLOY + "/api", d)
    check(s == 200 and b["metadata"]["resourceVersion"] == rv1,
          "the same apply again is 200 and changes nothing")
    d2 = json.loads(json.dumps(d))
    d2["metadata"]["labels"]["team"] = "x"
    s, _, b = c.apply(DEPLOY + "/api", d2)
    check(s == 200 and b["metadata"]["generation"] == 1 and b["metadata"]["resourceVersion"] != rv1,
          "a metadata-only change keeps the generation")
    d2["spec"]["template"]["spec"]["containers"][0]["image"] = "example/api:2.0"
    s, _, b = c.apply(DEPLOY + "/api", d2)
    check(s == 200 and b["metadata"]["generation"] == 2, "a spec change bumps the generation")
    st = c.wait(DEPLOY + "/api", complete)
    check(st is not None and cond(st, "Progressing").get("reason") == "NewReplicaSetAvailable"
          and "0" not in json.dumps({k: v for k, v in st["status"].items()
                                     if k != "conditions"}),
          "the Deployment completes, with no zero counters")
    kcm = [m for m in (st or {}).get("metadata", {}).get("managedFields", [])
           if m["manager"] == "kube-controller-manager"]
    check(len(kcm) == 1 and kcm[0]["operation"] == "Update" and
          kcm[0].get("subresource") == "status" and "f:status" in kcm[0]["fieldsV1"] and
          "f:deployment.kubernetes.io/revision" in kcm[0]["fieldsV1"]["f:metadata"]
          ["f:annotations"], "kube-controller-manager owns the status and the revision "
          "annotation (Update, subresource status)")
    s, _, pods = c.req("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dapi")
    check(s == 200 and len(pods["items"]) == 2 and all(
        p["metadata"]["labels"].get("pod-template-hash") and
        p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods["items"]) and
        "kind" not in pods["items"][0], "pods of the Deployment (labels, owner; list items "
        "without kind)")

    # ownership: a scripted rival owns .spec.replicas
    c.control("script", {"rivals": [{"path": DEPLOY + "/api", "manager": "hpa-controller",
                                     "operation": "Update", "subresource": "scale",
                                     "fields": [".spec.replicas"]}]})
    d3 = json.loads(json.dumps(d2))
    d3["spec"]["replicas"] = 3
    s, _, b = c.apply(DEPLOY + "/api", d3, force=False)
    check(s == 409 and b["reason"] == "Conflict" and b["details"]["causes"][0] ==
          {"reason": "FieldManagerConflict", "field": ".spec.replicas",
           "message": 'conflict with "hpa-controller" with subresource "scale" using apps/v1'}
          and b["message"].startswith("Apply failed with 1 conflict: conflict with "
                                      '"hpa-controller"'),
          "a rival's field conflicts without force: %s" % b.get("message"))
    s, _, b = c.apply(DEPLOY + "/api", d3, force=True)
    check(s == 200 and b["spec"]["replicas"] == 3 and
          all(m["manager"] != "hpa-controller" for m in b["metadata"]["managedFields"]),
          "force takes the field over")
    # another applier: kubectl applies a different image → conflict with kanaria
    d4 = json.loads(json.dumps(d3))
    d4["spec"]["template"]["spec"]["containers"][0]["image"] = "example/api:3.0"
    s, _, b = c.apply(DEPLOY + "/api", d4, manager="kubectl", force=False)
    check(s == 409 and b["details"]["causes"][0]["field"] ==
          '.spec.template.spec.containers[name="app"].image',
          "two appliers conflict on a container's image (merge by name)")
    # a field given up is removed when nobody else owns it
    d5 = json.loads(json.dumps(d3))
    del d5["metadata"]["labels"]["team"]
    s, _, b = c.apply(DEPLOY + "/api", d5)
    check(s == 200 and "team" not in b["metadata"]["labels"],
          "a label kanaria stopped applying is removed")

    # PUT with a stale resourceVersion, POST of an existing name
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "kanaria"}, "spec": {"holderIdentity": "a",
                                                       "leaseDurationSeconds": 15}}
    LP = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    s, _, b = c.req("POST", LP, lease)
    check(s == 201, "POST creates a Lease")
    s, _, b2 = c.req("POST", LP, lease)
    check(s == 409 and b2["reason"] == "AlreadyExists" and
          b2["message"] == 'leases.coordination.k8s.io "kanaria" already exists',
          "POST of an existing name is 409 AlreadyExists")
    b["spec"]["holderIdentity"] = "b"
    s, _, b3 = c.req("PUT", LP + "/kanaria", b)
    check(s == 200 and b3["spec"]["holderIdentity"] == "b", "PUT with the current rv")
    b["spec"]["holderIdentity"] = "c"
    s, _, b4 = c.req("PUT", LP + "/kanaria", b)
    check(s == 409 and b4["reason"] == "Conflict" and "the object has been modified" in
          b4["message"], "PUT with a stale rv is 409")

    # Warn (the default) drops an unknown field and says so in a Warning header
    s, h, b = c.req("POST", "/api/v1/namespaces/default/configmaps",
                    {"metadata": {"name": "warned"}, "data": {"a": "b"}, "dataa": {"x": "y"}})
    check(s == 201 and "dataa" not in b and h.get("Warning") == '299 - "unknown field '
          '\\"dataa\\""', "an unknown field on create: dropped, with a Warning header (%s)"
          % h.get("Warning"))
    c.req("DELETE", "/api/v1/namespaces/default/configmaps/warned")

    # merge patch
    s, _, b = c.req("PATCH", DEPLOY + "/api?fieldManager=kanaria",
                    {"metadata": {"annotations": {"a": "b"}}}, "application/merge-patch+json")
    check(s == 200 and b["metadata"]["annotations"]["a"] == "b", "merge patch")
    s, _, b = c.req("PATCH", DEPLOY + "/api?force=true", {"metadata": {}},
                    "application/merge-patch+json")
    check(s == 422, "force on a non-apply patch is 422")

    # list: selectors and paging
    for n in ("l1", "l2", "l3"):
        c.req("POST", "/api/v1/namespaces/default/configmaps",
              {"metadata": {"name": n, "labels": {"tier": "x" if n != "l3" else "y"}},
               "data": {"k": n}})
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=" +
                    urllib.parse.quote("tier in (x),tier!=z"))
    check([i["metadata"]["name"] for i in b["items"]] == ["l1", "l2"], "set-based selector")
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=%21tier")
    check(b["items"] == [], "!key selector")
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dl2")
    check([i["metadata"]["name"] for i in b["items"]] == ["l2"], "fieldSelector metadata.name")
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps?limit=2")
    s2, _, b2 = c.req("GET", "/api/v1/namespaces/default/configmaps?limit=2&continue=" +
                      urllib.parse.quote(b["metadata"]["continue"]))
    check(len(b["items"]) == 2 and len(b2["items"]) == 1 and "continue" not in b2["metadata"]
          and b2["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"],
          "limit/continue pages with one resourceVersion")

    # a list not older than a version still to come waits for it, or gives up with 504
    cur = int(c.req("GET", "/api/v1/namespaces/default/configmaps")[2]["metadata"]
              ["resourceVersion"])
    threading.Timer(0.3, lambda: c.req("POST", "/api/v1/namespaces/default/configmaps",
                                       {"metadata": {"name": "later"}})).start()
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=%d" % (cur + 1))
    check(s == 200 and int(b["metadata"]["resourceVersion"]) >= cur + 1,
          "a list at a resourceVersion still to come waits for it")
    s, h, b = c.req("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=%d"
                    % (cur + 100000))
    check(s == 504 and b["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge" and
          h.get("Retry-After") == "1", "a list at a resourceVersion far ahead: 504")
    c.req("DELETE", "/api/v1/namespaces/default/configmaps/later")

    # watch semantics
    s, _, lst = c.req("GET", "/api/v1/namespaces/default/configmaps")
    lrv = lst["metadata"]["resourceVersion"]
    c.control("script", {"bookmarkSeconds": 0.3})
    w0 = Watch(port, "/api/v1/namespaces/default/configmaps?watch=True&timeoutSeconds=2")
    w1 = Watch(port, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%s"
               "&allowWatchBookmarks=true&timeoutSeconds=3" % lrv)
    c.req("PATCH", "/api/v1/namespaces/default/configmaps/l1",
          {"data": {"k": "v2"}}, "application/merge-patch+json")
    e0 = w0.wait_for(lambda e: e["type"] == "MODIFIED")
    check(w0.status == 200 and w0.headers.get("Transfer-Encoding") == "chunked" and
          [e["type"] for e in w0.events[:3]] == ["ADDED"] * 3 and e0 is not None,
          "watch=True without rv: synthetic ADDED, then MODIFIED")
    e1 = w1.wait_for(lambda e: e["type"] == "MODIFIED")
    check(e1 is not None and w1.events[0]["type"] == "MODIFIED" and
          e1["object"]["data"]["k"] == "v2", "watch from the list rv: no ADDED, the change")
    bm = w1.wait_for(lambda e: e["type"] == "BOOKMARK", timeout=5)
    check(bm is not None and set(bm["object"]["metadata"]) == {"resourceVersion"} and
          bm["object"]["kind"] == "ConfigMap", "bookmarks when asked for")
    check(w0.done.wait(5) and w0.clean, "the stream ends cleanly at timeoutSeconds")
    w1.done.wait(5)
    # a start at exact from history replays what came after that version
    w2 = Watch(port, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=%s"
               "&timeoutSeconds=1" % lrv)
    w2.done.wait(5)
    check([e["type"] for e in w2.events] == ["MODIFIED"], "start at exact rv: only later events")
    wl = Watch(port, "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true"
               "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1")
    wl.done.wait(5)
    types = [e["type"] for e in wl.events]
    check(types[:4] == ["ADDED"] * 3 + ["BOOKMARK"] and wl.events[3]["object"]["metadata"]
          ["annotations"] == {"k8s.io/initial-events-end": "true"},
          "watch-list: the initial state ends with an initial-events-end BOOKMARK")
    # expiry
    c.control("expire", {"next": 1, "current": False})
    w3 = Watch(port, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%s" % lrv)
    e3 = w3.wait_for(lambda e: e["type"] == "ERROR")
    check(w3.status == 200 and e3 is not None and e3["object"]["code"] == 410 and
          e3["object"]["reason"] == "Expired" and
          e3["object"]["message"].startswith("too old resource version: %s (" % lrv)
          and w3.done.wait(5), "scripted expiry: 200 + in-stream ERROR 410, then the end")
    c.control("expire", {"next": 1, "current": False, "mode": "http"})
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1")
    check(s == 410 and b["reason"] == "Expired", "expiry as HTTP 410")
    w4 = Watch(port, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%s" % lrv)
    time.sleep(0.2)
    c.control("expire", {"current": True})
    check(w4.wait_for(lambda e: e["type"] == "ERROR") is not None, "expire an open watch")
    w5 = Watch(port, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%s" % lrv)
    time.sleep(0.2)
    c.control("drop", {"current": True})
    check(w5.done.wait(5) and w5.clean is False, "a dropped watch ends without the last chunk")
    for w in (w0, w1, w2, w3, w4, w5):
        w.close()

    # delete
    for n in ("dc1", "dc2"):
        c.req("POST", "/api/v1/namespaces/default/secrets",
              {"metadata": {"name": n, "labels": {"dc": "yes"}}, "stringData": {"k": "v"}})
    s, _, b = c.req("DELETE", "/api/v1/namespaces/default/secrets?labelSelector=dc%3Dyes")
    s2, _, b2 = c.req("GET", "/api/v1/namespaces/default/secrets?labelSelector=dc%3Dyes")
    check(s == 200 and b["kind"] == "SecretList" and len(b["items"]) == 2 and
          b["items"][0]["data"] == {"k": "dg=="} and b2["items"] == [],
          "delete a collection by label (stringData stored as data)")
    s, _, b = c.req("DELETE", "/api/v1/namespaces/default/configmaps/l3")
    check(s == 200 and b["status"] == "Success" and b["details"]["kind"] == "configmaps",
          "delete at once: Status Success with the plural")
    s, _, b = c.req("DELETE", "/api/v1/namespaces/default/configmaps/l3")
    check(s == 404, "delete of a missing object is 404")
    wd = Watch(port, DEPLOY + "?watch=1&fieldSelector=metadata.name%%3Dapi&resourceVersion=%s"
               % c.req("GET", DEPLOY)[2]["metadata"]["resourceVersion"])
    s, _, b = c.req("DELETE", DEPLOY + "/api?propagationPolicy=Foreground")
    check(s == 200 and b["metadata"].get("deletionTimestamp") and
          "foregroundDeletion" in b["metadata"]["finalizers"],
          "Foreground delete: the object with deletionTimestamp")
    check(wd.wait_for(lambda e: e["type"] == "DELETED") is not None and
          c.wait("/api/v1/namespaces/default/pods?labelSelector=app%3Dapi",
                 lambda x: not x["items"]) is not None,
          "then DELETED, and its pods are gone")
    wd.close()

    # a namespace goes Terminating, refuses new content, then goes with what it held
    c.apply("/api/v1/namespaces/tmp", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "tmp"}})
    c.req("POST", "/api/v1/namespaces/tmp/configmaps", {"metadata": {"name": "x"}})
    s, _, b = c.req("DELETE", "/api/v1/namespaces/tmp")
    s2, _, b2 = c.req("POST", "/api/v1/namespaces/tmp/configmaps", {"metadata": {"name": "y"}})
    gone = c.wait("/api/v1/configmaps", lambda x: not any(
        i["metadata"]["namespace"] == "tmp" for i in x["items"]))
    check(s == 200 and b["status"]["phase"] == "Terminating" and s2 == 403 and
          "because it is being terminated" in b2["message"] and gone is not None and
          c.req("GET", "/api/v1/namespaces/tmp")[0] == 404,
          "namespace deletion: Terminating, 403 on create, then gone with its contents")
    # a no-op update keeps the resourceVersion
    s, _, b = c.req("GET", "/api/v1/namespaces/default/configmaps/l2")
    s2, _, b2 = c.req("PATCH", "/api/v1/namespaces/default/configmaps/l2", {"data": b["data"]},
                      "application/merge-patch+json")
    check(s2 == 200 and b2["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"],
          "a no-op merge patch keeps the resourceVersion")

    # pods with failing images; ProgressDeadlineExceeded on the virtual clock
    c.apply(DEPLOY + "/crashy", deployment("crashy", "example/app:1.0-crash", pds=30))
    p = c.wait("/api/v1/namespaces/default/pods?labelSelector=app%3Dcrashy",
               lambda x: x["items"] and x["items"][0]["status"]["containerStatuses"][0]
               ["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff")
    check(p is not None, "an image tag with 'crash' → CrashLoopBackOff")
    c.control("clock", {"advance": 60})
    d = c.wait(DEPLOY + "/crashy",
               lambda x: cond(x, "Progressing").get("reason") == "ProgressDeadlineExceeded")
    check(d is not None and cond(d, "Progressing")["status"] == "False" and
          cond(d, "Progressing")["message"].endswith("has timed out progressing.") and
          "availableReplicas" not in d["status"], "ProgressDeadlineExceeded past the deadline")
    c.apply(DEPLOY + "/pull", deployment("pull", "example/app:badimage", replicas=1))
    p = c.wait("/api/v1/namespaces/default/pods?labelSelector=app%3Dpull",
               lambda x: x["items"] and x["items"][0]["status"]["containerStatuses"][0]
               ["state"].get("waiting", {}).get("reason") == "ImagePullBackOff")
    check(p is not None, "an image tag with 'badimage' → ImagePullBackOff")

    c.control("script", {"imageRules": [{"match": "quota", "reason": "FailedCreate"},
                                         {"match": "errors", "http": 500}]})
    c.apply(DEPLOY + "/quota", deployment("quota", "example/app:quota", replicas=1))
    d = c.wait(DEPLOY + "/quota", lambda x: cond(x, "ReplicaFailure").get("reason") ==
               "FailedCreate")
    s, _, pods = c.req("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dquota")
    check(d is not None and cond(d, "ReplicaFailure")["status"] == "True" and
          pods["items"] == [], "an image rule FailedCreate: no pods, ReplicaFailure=True")

    # scripted status
    c.control("status", {"path": DEPLOY + "/pull", "status": {"observedGeneration": 1}})
    s, _, b = c.req("GET", DEPLOY + "/pull")
    time.sleep(0.3)
    s, _, b2 = c.req("GET", DEPLOY + "/pull")
    check(b["status"] == {"observedGeneration": 1} and b2["status"] == b["status"],
          "a scripted status stays")

    # HTTPRoute status and traffic
    c.apply(SVC + "/shop", service("shop", "shop"))
    c.apply(SVC + "/shop-canary", service("shop-canary", "shop-canary"))
    c.apply(DEPLOY + "/shop", deployment("shop", "example/shop:1.0", replicas=1))
    c.apply(DEPLOY + "/shop-canary", deployment("shop-canary", "example/shop:2.0-errors",
                                                 replicas=1))
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "shop"},
             "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
                 {"name": "shop", "port": 80, "weight": 75},
                 {"name": "shop-canary", "port": 80, "weight": 25}]}]}}
    s, _, b = c.apply(ROUTES + "/shop", route)
    check(s == 201, "apply an HTTPRoute")
    r = c.wait(ROUTES + "/shop", lambda x: x.get("status", {}).get("parents"))
    conds = {x["type"]: x for x in r["status"]["parents"][0]["conditions"]} if r else {}
    check(r is not None and conds["Accepted"]["status"] == "True" and
          conds["ResolvedRefs"]["status"] == "True" and
          conds["Accepted"]["observedGeneration"] == r["metadata"]["generation"] and
          r["status"]["parents"][0]["parentRef"]["kind"] == "Gateway",
          "HTTPRoute status.parents Accepted/ResolvedRefs at the generation")
    route["spec"]["rules"][0]["backendRefs"].append({"name": "ghost", "port": 80, "weight": 0})
    c.apply(ROUTES + "/shop", route)
    r = c.wait(ROUTES + "/shop", lambda x: any(
        k["type"] == "ResolvedRefs" and k["status"] == "False" and k["reason"] ==
        "BackendNotFound" and k["observedGeneration"] == x["metadata"]["generation"]
        for k in x.get("status", {}).get("parents", [{}])[0].get("conditions", [])))
    check(r is not None, "a missing backend Service → ResolvedRefs False BackendNotFound")
    c.wait(DEPLOY + "/shop-canary", complete)
    c.wait(DEPLOY + "/shop", complete)
    time.sleep(1.0)
    s, h, text = c.req("GET", "/metrics")
    vals = {}
    for line in text.splitlines():
        if line.startswith("kube_fake_http_requests_total{"):
            labels, v = line.rsplit(" ", 1)
            vals[labels] = float(v)
    ok = vals.get('kube_fake_http_requests_total{namespace="default",service="shop",code="200"}',
                  0)
    err = vals.get('kube_fake_http_requests_total{namespace="default",service="shop-canary",'
                   'code="500"}', 0)
    check(s == 200 and ok > 0 and err > 0 and ok > err, "metrics: the canary's 'errors' image "
          "answers 500, traffic split by weight (ok %s, err %s)" % (ok, err))
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        check(p.returncode == 0, "promtool check metrics accepts /metrics: %s"
              % (p.stdout + p.stderr).strip())
    else:
        skip("promtool not installed (the /metrics lint)")

    # VirtualService: one storage for v1beta1 and v1, status after a delay
    vs = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
          "metadata": {"name": "shop"},
          "spec": {"hosts": ["shop"], "http": [{"route": [
              {"destination": {"host": "shop"}, "weight": 90},
              {"destination": {"host": "shop-canary"}, "weight": 10}]}]}}
    VS1B = "/apis/networking.istio.io/v1beta1/namespaces/default/virtualservices/shop"
    s, _, b = c.apply(VS1B, vs)
    r = c.wait(VS1B.replace("v1beta1", "v1"), lambda x: x.get("status", {}).get(
        "observedGeneration") == x["metadata"]["generation"])
    check(s == 201 and r is not None and r["apiVersion"] == "networking.istio.io/v1" and
          r["status"]["conditions"][0]["type"] == "Reconciled",
          "a VirtualService written as v1beta1 reads as v1, with status")
    vs["spec"]["http"][0]["route"] = [{"destination": {"host": "shop"}, "weight": 100}]
    s, _, b = c.apply(VS1B, vs)
    check(s == 200 and len(b["spec"]["http"][0]["route"]) == 1,
          "a CRD list (http[].route) is replaced whole by apply")

    # groups, faults, request log
    c.control("groups", {"remove": ["gateway.networking.k8s.io/v1"]})
    s, _, b = c.req("GET", ROUTES)
    s2, _, b2 = c.req("GET", "/apis/gateway.networking.k8s.io/v1")
    check(s == 404 and b == "404 page not found\n" and s2 == 404,
          "a removed group version: text 404 for discovery and resources")
    c.control("groups", {"restore": ["gateway.networking.k8s.io/v1"]})
    c.control("fault", {"status": 429, "retryAfter": 2, "count": 1, "pathRegex": "/configmaps"})
    s, h, b = c.req("GET", "/api/v1/namespaces/default/configmaps")
    s2, _, _ = c.req("GET", "/api/v1/namespaces/default/configmaps")
    check(s == 429 and h.get("Retry-After") == "2" and b["reason"] == "TooManyRequests" and
          b["details"]["retryAfterSeconds"] == 2 and s2 == 200, "a scripted 429 with Retry-After")
    log = c.control("requests")
    applies = [x for x in log if x["method"] == "PATCH" and
               x["contentType"] == "application/apply-patch+yaml"]
    check(applies and any(x["query"].get("fieldManager") is None for x in applies) and
          any(x["query"].get("force") == "true" for x in applies) and
          isinstance(applies[-1]["body"], dict) and
          [x["seq"] for x in log] == list(range(log[0]["seq"], log[0]["seq"] + len(log))) and
          [x["seq"] for x in c.control("requests?since=%d" % log[-2]["seq"])][:1] ==
          [log[-1]["seq"]], "the request log (seq, since)")
    wr = Watch(port, DEPLOY + "?watch=1")
    before = int(c.control("objects")["resourceVersion"])
    c.control("reset", {})
    after = c.control("objects")
    check(int(after["resourceVersion"]) > before and
          {o["kind"] for o in after["items"]} == {"Namespace"} and
          wr.wait_for(lambda e: e["type"] == "ERROR") is not None and
          c.control("script")["imageRules"][0]["match"] == "crash",
          "reset: only the namespaces, resourceVersions still go up, open watches expire")
    wr.close()


def auth_checks():
    port = start_fake("--token", "t0ken", name="auth")
    c = Client(port)
    s, _, b = c.req("GET", "/api/v1/namespaces")
    check(s == 401 and b["reason"] == "Unauthorized", "no token → 401 Status")
    c.token = "t0ken"
    s, _, b = c.req("GET", "/api/v1/namespaces")
    check(s == 200 and any(n["metadata"]["name"] == "default" for n in b["items"]),
          "the right token")
    c.control("token", {"token": "n3w"})
    s1 = c.req("GET", "/api/v1/namespaces")[0]
    c.token = "n3w"
    s2 = c.req("GET", "/api/v1/namespaces")[0]
    check(s1 == 401 and s2 == 200, "a rotated token")
    tf = os.path.join(TMP, "token")
    with open(tf, "w") as f:
        f.write("first\n")
    c2 = Client(start_fake("--token-file", tf, name="tokenfile"), "first")
    s1 = c2.req("GET", "/api/v1/namespaces")[0]
    with open(tf, "w") as f:
        f.write("second\n")
    s2 = c2.req("GET", "/api/v1/namespaces")[0]
    c2.token = "second"
    s3 = c2.req("GET", "/api/v1/namespaces")[0]
    with open(tf, "w") as f:
        f.write("")
    c2.token = ""
    s4 = c2.req("GET", "/api/v1/namespaces")[0]
    check((s1, s2, s3, s4) == (200, 401, 200, 401), "--token-file is re-read: a rewritten "
          "token file; an empty one lets nobody in (%d %d %d %d)" % (s1, s2, s3, s4))
    log = c.control("requests")
    check(all(x["headers"].get("Authorization") in (None, "<redacted>") for x in log) and
          "n3w" not in json.dumps(log) and "t0ken" not in json.dumps(log),
          "the request log shows no token")


# ---- kubectl ----------------------------------------------------------------------------------

def kubeconfig(path, server, token=None, ca=None):
    user = {"token": token} if token else {}
    cluster = {"server": server}
    if ca:
        cluster["certificate-authority"] = ca
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                   "clusters": [{"name": "f", "cluster": cluster}],
                   "users": [{"name": "u", "user": user}],
                   "contexts": [{"name": "c", "context": {"cluster": "f", "user": "u",
                                                          "namespace": "default"}}]}, f)


def kubectl(home, kcfg, *args, timeout=30, stdin=None):
    env = dict(os.environ, HOME=home, KUBECONFIG=kcfg)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    p = subprocess.run(["kubectl"] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout, input=stdin)
    return p.returncode, p.stdout, p.stderr


def kubectl_checks():
    if not shutil.which("kubectl"):
        skip("kubectl not installed")
        return False
    port = start_fake("--speed", "4", name="kubectl")
    c = Client(port)
    home = os.path.join(TMP, "home-kubectl")
    os.makedirs(home)
    kcfg = os.path.join(TMP, "kubeconfig")
    kubeconfig(kcfg, "http://127.0.0.1:%d" % port)
    man = os.path.join(TMP, "web.json")
    with open(man, "w") as f:
        json.dump(deployment("web", "example/web:1.0", replicas=3), f)
    rc, out, err = kubectl(home, kcfg, "apply", "--server-side", "-f", man)
    check(rc == 0 and "deployment.apps/web serverside-applied" in out,
          "kubectl apply --server-side (strict validation by the server): %s %s"
          % (out.strip(), err.strip()))
    log = c.control("requests")
    patch = [x for x in log if x["method"] == "PATCH"]
    check(patch and patch[-1]["query"].get("fieldValidation") == "Strict" and
          patch[-1]["query"].get("fieldManager") == "kubectl",
          "kubectl delegated validation (fieldValidation=Strict)")
    bad = deployment("web", "example/web:1.0", replicas=3)
    bad["spec"]["replica"] = 1
    with open(man + ".bad", "w") as f:
        json.dump(bad, f)
    rc, out, err = kubectl(home, kcfg, "apply", "--server-side", "-f", man + ".bad")
    check(rc != 0 and "field not declared in schema" in err,
          "kubectl shows the server's strict-validation error: %s" % err.strip())
    rc, out, err = kubectl(home, kcfg, "rollout", "status", "deploy/web", "--timeout=30s")
    check(rc == 0 and 'deployment "web" successfully rolled out' in out,
          "kubectl rollout status succeeds: %s" % out.strip().splitlines()[-1:])
    # an in-stream 410 on kubectl's open watch: it relists and still succeeds. The simulator
    # leaves the Deployment alone meanwhile, so kubectl waits on a stale observedGeneration.
    c.control("status", {"path": DEPLOY + "/web"})
    with open(man, "w") as f:
        json.dump(deployment("web", "example/web:1.1", replicas=3), f)
    kubectl(home, kcfg, "apply", "--server-side", "-f", man)
    since = len(c.control("requests"))
    env = dict(os.environ, HOME=home, KUBECONFIG=kcfg)
    p = subprocess.Popen(["kubectl", "rollout", "status", "deploy/web", "--timeout=30s"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    PROCS.append(p)

    def watches():
        return [x for x in c.control("requests")[since:]
                if x["query"].get("watch") in ("true", "1", "True")]
    deadline = time.time() + 15
    while time.time() < deadline and not watches():
        time.sleep(0.05)
    time.sleep(0.3)
    expired = c.control("expire", {"current": True})["expired"]
    deadline = time.time() + 15
    while time.time() < deadline and len(watches()) < 2:
        time.sleep(0.05)
    c.control("status", {"path": DEPLOY + "/web", "simulate": True})
    out, err = p.communicate(timeout=30)
    log = c.control("requests")[since:]
    lists = [x for x in log if x["method"] == "GET" and x["path"].endswith("/deployments")
             and "watch" not in x["query"]]
    check(p.returncode == 0 and "successfully rolled out" in out and expired >= 1 and
          len(watches()) >= 2 and len(lists) >= 2 and
          lists[-1]["query"].get("resourceVersion") not in (None, "0"),
          "kubectl relists after an in-stream 410 (%d lists, %d watches): %s"
          % (len(lists), len(watches()), err.strip()))
    # ProgressDeadlineExceeded → rc 1
    with open(man, "w") as f:
        json.dump(deployment("stuck", "example/web:1.0-crash", replicas=1, pds=2), f)
    kubectl(home, kcfg, "apply", "--server-side", "-f", man)
    rc, out, err = kubectl(home, kcfg, "rollout", "status", "deploy/stuck", "--timeout=30s")
    check(rc == 1 and 'deployment "stuck" exceeded its progress deadline' in err,
          "kubectl rollout status fails on ProgressDeadlineExceeded: %s" % err.strip())
    # scripted status sequences: kubectl's verdict on each
    for name, last, want_rc in (
            ("seq-ok", {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                        "readyReplicas": 2, "availableReplicas": 2}, 0),
            ("seq-stuck", {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1,
                           "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1,
                           "conditions": [{"type": "Progressing", "status": "False",
                                           "reason": "ProgressDeadlineExceeded",
                                           "message": 'ReplicaSet "x" has timed out '
                                                      'progressing.'}]}, 1)):
        c.apply(DEPLOY + "/" + name, deployment(name, "example/web:1.0", replicas=2))
        c.control("sequence", {"path": DEPLOY + "/" + name, "steps": [
            {"after": 0, "status": {}},
            {"after": 2, "status": {"observedGeneration": 1, "replicas": 3,
                                    "updatedReplicas": 1, "readyReplicas": 2,
                                    "availableReplicas": 2}},
            {"after": 2, "status": last}]})
        rc, out, err = kubectl(home, kcfg, "rollout", "status", "deploy/" + name,
                               "--timeout=30s")
        check(rc == want_rc, "kubectl rollout status on the scripted sequence %s: rc %d: %s %s"
              % (name, rc, out.strip().replace("\n", " | "), err.strip()))
    # get -w --output-watch-events
    env = dict(os.environ, HOME=home, KUBECONFIG=kcfg)
    p = subprocess.Popen(["kubectl", "get", "deploy", "web", "-w", "--output-watch-events"],
                         env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    PROCS.append(p)
    time.sleep(1.0)
    c.apply(DEPLOY + "/web", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "annotations": {"x": "y"}}}, manager="other")
    time.sleep(1.0)
    p.terminate()
    out, err = p.communicate(timeout=10)
    check("ADDED" in out and "MODIFIED" in out, "kubectl get -w --output-watch-events: %r"
          % out[:200])
    # client-side apply: a strategic merge patch with kubectl's directives
    cs = os.path.join(TMP, "cs.json")
    with open(cs, "w") as f:
        json.dump(deployment("cs", "example/cs:1.0", replicas=1), f)
    rc1, _, err1 = kubectl(home, kcfg, "apply", "-f", cs)
    with open(cs, "w") as f:
        json.dump(deployment("cs", "example/cs:2.0", replicas=1), f)
    rc2, out2, err2 = kubectl(home, kcfg, "apply", "-f", cs)
    s, _, b = c.req("GET", DEPLOY + "/cs")
    smp = [x for x in c.control("requests") if x["method"] == "PATCH" and
           x["contentType"] == "application/strategic-merge-patch+json"]
    check(rc1 == 0 and rc2 == 0 and smp and
          b["spec"]["template"]["spec"]["containers"][0]["image"] == "example/cs:2.0" and
          "$setElementOrder" not in json.dumps(b) and b["metadata"]["generation"] == 2,
          "kubectl client-side apply (strategic merge patch): %s %s" % (err1.strip(),
                                                                        err2.strip()))
    rc, out, err = kubectl(home, kcfg, "get", "deploy", "nope")
    check(rc == 1 and 'Error from server (NotFound): deployments.apps "nope" not found' in err,
          "kubectl get of a missing object: %s" % err.strip())
    rc, out, err = kubectl(home, kcfg, "delete", "deploy", "web")
    check(rc == 0 and 'deployment.apps "web" deleted' in out, "kubectl delete: %s" % out.strip())
    rc, out, err = kubectl(home, kcfg, "get", "httproutes")
    check(rc == 0, "kubectl knows httproutes from discovery")
    c.control("groups", {"remove": ["gateway.networking.k8s.io/v1"]})
    home2 = os.path.join(TMP, "home-kubectl-2")
    os.makedirs(home2)
    rc, out, err = kubectl(home2, kcfg, "get", "httproutes")
    check(rc != 0 and 'the server doesn\'t have a resource type "httproutes"' in err,
          "without the group, kubectl does not know httproutes: %s" % err.strip())
    tls_checks()
    return True


def tls_checks():
    if not shutil.which("openssl"):
        skip("openssl not installed (TLS check)")
        return
    d = os.path.join(TMP, "tls")
    os.makedirs(d)

    def ossl(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "2", "-subj", "/CN=kube-fake-test-ca")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "ext")
    port = start_fake("--token", "tls-t0ken", "--tls-cert", os.path.join(d, "srv.crt"),
                      "--tls-key", os.path.join(d, "srv.key"), name="tls")
    home = os.path.join(TMP, "home-tls")
    os.makedirs(home)
    kcfg = os.path.join(TMP, "kubeconfig-tls")
    kubeconfig(kcfg, "https://127.0.0.1:%d" % port, token="tls-t0ken",
               ca=os.path.join(d, "ca.crt"))
    rc, out, err = kubectl(home, kcfg, "get", "namespaces", "-o", "name")
    check(rc == 0 and "namespace/default" in out, "kubectl over TLS with a bearer token")
    kubeconfig(kcfg, "https://127.0.0.1:%d" % port, token="wrong", ca=os.path.join(d, "ca.crt"))
    rc, out, err = kubectl(home, kcfg, "get", "namespaces", "-o", "name")
    check(rc != 0 and ("Unauthorized" in err or "provide credentials" in err),
          "kubectl over TLS with a wrong token is refused")
    # client certificates signed by --client-ca authenticate
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "cli.key", "-out", "cli.csr",
         "-subj", "/CN=kanaria/O=test")
    ossl("x509", "-req", "-in", "cli.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "cli.crt", "-days", "2")
    port = start_fake("--token", "tls-t0ken", "--tls-cert", os.path.join(d, "srv.crt"),
                      "--tls-key", os.path.join(d, "srv.key"), "--client-ca",
                      os.path.join(d, "ca.crt"), name="mtls")

    def get(with_cert):
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
        if with_cert:
            ctx.load_cert_chain(os.path.join(d, "cli.crt"), os.path.join(d, "cli.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("GET", "/api/v1/namespaces")
        st = conn.getresponse().status
        conn.close()
        return st
    check(get(True) == 200 and get(False) == 401,
          "a client certificate signed by --client-ca authenticates; none and no token is 401")


# ---- python3-kubernetes -----------------------------------------------------------------------

def python_client_checks():
    try:
        import kubernetes    # noqa: F401
        from kubernetes import client, watch
        from kubernetes.client.rest import ApiException
    except ImportError:
        skip("python3-kubernetes not installed (tests/deps.sh installs it)")
        return False
    port = start_fake("--speed", "4", name="pyclient")
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:%d" % port
    api = client.ApiClient(cfg)
    apps = client.AppsV1Api(api)
    d = deployment("py", "example/py:1.0", replicas=2)
    obj = api.call_api(DEPLOY + "/py", "PATCH", query_params=[("fieldManager", "kanaria"),
                                                             ("force", "true")],
                       header_params={"Content-Type": "application/apply-patch+yaml",
                                      "Accept": "application/json"},
                       body=json.dumps(d), response_type="V1Deployment",
                       _return_http_data_only=True)
    check(isinstance(obj, client.V1Deployment) and obj.spec.replicas == 2 and
          obj.metadata.managed_fields[0].manager == "kanaria",
          "python client: SSA reply decodes as V1Deployment")
    try:
        api.call_api(DEPLOY + "/py", "PATCH",
                     header_params={"Content-Type": "application/apply-patch+yaml"},
                     body=json.dumps(d), response_type="V1Deployment",
                     _return_http_data_only=True)
        check(False, "python client: apply without fieldManager fails")
    except ApiException as e:
        check(e.status == 422 and json.loads(e.body)["reason"] == "Invalid",
              "python client: apply without fieldManager → 422 Invalid")
    lst = apps.list_namespaced_deployment("default")
    rv = lst.metadata.resource_version
    check(isinstance(lst, client.V1DeploymentList) and lst.items[0].metadata.name == "py" and
          lst.items[0].spec.selector.match_labels == {"app": "py"},
          "python client: DeploymentList decodes")
    w = watch.Watch()
    seen = []
    for ev in w.stream(apps.list_namespaced_deployment, "default", resource_version=rv,
                       field_selector="metadata.name=py", timeout_seconds=10):
        seen.append((ev["type"], ev["object"].status.ready_replicas))
        if ev["object"].status.ready_replicas == 2:
            w.stop()
    check(seen and all(t == "MODIFIED" for t, _ in seen) and seen[-1][1] == 2,
          "python client: watch from a resourceVersion follows the rollout: %s" % seen)
    try:
        apps.read_namespaced_deployment("ghost", "default")
        check(False, "python client: 404")
    except ApiException as e:
        check(e.status == 404 and e.reason == "Not Found" and
              json.loads(e.body)["reason"] == "NotFound", "python client: 404 ApiException")
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod("default", label_selector="app=py")
    check(len(pods.items) == 2 and all(p.metadata.owner_references[0].kind == "ReplicaSet"
                                       for p in pods.items), "python client: pods decode")
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="l"),
                           spec=client.V1LeaseSpec(holder_identity="a",
                                                   lease_duration_seconds=15))
    coord = client.CoordinationV1Api(api)
    got = coord.create_namespaced_lease("default", lease)
    got.spec.holder_identity = "b"
    coord.replace_namespaced_lease("l", "default", got)
    try:
        got.spec.holder_identity = "c"
        coord.replace_namespaced_lease("l", "default", got)
        check(False, "python client: stale Lease update")
    except ApiException as e:
        check(e.status == 409, "python client: stale Lease update → 409")
    api.close()
    return True


def main():
    rc = 0
    ran = []
    try:
        port = start_fake("--speed", "4")
        raw_checks(port)
        auth_checks()
        ran.append(kubectl_checks())
        ran.append(python_client_checks())
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.terminate()
        for p in PROCS:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(TMP, ignore_errors=True)
    if FAILED:
        print("%d check(s) failed:" % len(FAILED))
        for f in FAILED:
            print("  " + f)
        rc = 1
    elif SKIPPED and os.environ.get("CI") == "true":
        print("FAIL: skipped under CI=true: %s" % "; ".join(SKIPPED))
        rc = 1
    elif not any(ran):
        rc = 77
    return rc


if __name__ == "__main__":
    sys.exit(main())
