#!/usr/bin/env python3
"""
kanaria's scripted Kubernetes API server fake, for the kubernetes platform's tests. Python 3
standard library only (Debian 12's /usr/bin/python3); loopback only; HTTP/1.1 (no HTTP/2).

    kube_fake.py --port 0 --port-file FILE [--token TOKEN | --token-file F]
                 [--tls-cert C --tls-key K [--client-ca CA]] [--speed X]

It writes the port it listens on to FILE (atomically) once listening; SIGTERM ends it. Without
--token/--token-file no authentication is asked for; with one, API requests need
`Authorization: Bearer TOKEN` (else a 401 Status). With --client-ca, a client certificate signed
by that CA also authenticates. --token-file is re-read on every request (rotation by rewrite;
an empty or unreadable file lets nobody in). kubectl (client-go) sends no bearer token over
plain HTTP: token checks with kubectl need --tls-cert/--tls-key.
--speed X runs the simulated controllers' clock X times faster than real time (delays, pod
start, progressDeadlineSeconds); request traffic (/metrics) always counts in real seconds.

This is kanaria's own model of kube-apiserver, written from kanaria's notes (kubernetes.md
sections 1, 2, 3, 7 and 8); it is not kube-apiserver and not kwok. What it serves:

  * /version, /healthz, legacy discovery (/api, /apis, /api/v1, /apis/G/V) for v1, apps/v1,
    coordination.k8s.io/v1, gateway.networking.k8s.io/v1, networking.istio.io/v1 and v1beta1;
    /openapi/v3 (+ one document per group version) that only advertises the PATCH query
    parameter fieldValidation, so `kubectl apply --server-side` leaves validation to the server
    (and an empty /openapi/v2 protobuf document, which kubectl before 1.28 downloads first);
    an unknown path or resource type gives the text `404 page not found`.
  * Resources: namespaces, services, configmaps, secrets, serviceaccounts, pods (v1);
    deployments (apps/v1, with status); leases (coordination.k8s.io/v1); httproutes and gateways
    (gateway.networking.k8s.io/v1); virtualservices (networking.istio.io v1 and v1beta1, one
    storage). The status subresource (`.../NAME/status`: GET, PUT, merge PATCH) exists for the
    kinds that have status.
  * Store: a global resourceVersion counter (a string), uid, creationTimestamp, generation (only
    for kinds with a spec that kube counts: Deployment, HTTPRoute, Gateway, VirtualService) bumped
    on spec changes only, Deployment/Service defaults, zero status counters omitted, managedFields
    (FieldsV1) per manager and operation. Items of built-in lists carry no kind/apiVersion, CRD
    list items do (as the real server).
  * GET / LIST with labelSelector (=, ==, !=, in, notin, exists, !exists), fieldSelector
    (metadata.name, metadata.namespace, = / == / !=), limit/continue; list metadata
    resourceVersion; a
    resourceVersion the store has not reached: wait 3 s, then 504 "Too large resource version"
    with Retry-After; a non-numeric one: 500, as a real server answers.
  * Server-side apply (PATCH application/apply-patch+yaml, a JSON body): fieldManager required
    (422), name mismatch (400), managedFields in the body (400), 201 created / 200 merged, field
    ownership per manager with 409 FieldManagerConflict unless force=true (ownership moves),
    dryRun=All, maps merged by key, containers/initContainers/env/volumes/imagePullSecrets by
    name, volumeMounts by mountPath, ports by containerPort (containers) or port (services),
    conditions by type; all other lists, and every list of the CRD kinds (HTTPRoute rules,
    VirtualService http), are atomic. A field the manager no longer applies is removed when no
    other manager owns it. fieldValidation=Strict: unknown fields of known kinds (top level,
    metadata, spec; pod template and containers) → 400; Warn (default) → a `Warning: 299` header
    and the field dropped; Ignore → dropped.
  * merge-patch+json (RFC 7386), json-patch+json (add/remove/replace/test), strategic-merge-patch
    (the merge above), PUT (metadata.resourceVersion checked: 409 "the object has been
    modified"), POST (409 AlreadyExists; generateName), DELETE (propagationPolicy Orphan /
    Background: at once, 200 Status Success with details kind = plural; Foreground:
    deletionTimestamp + finalizers [foregroundDeletion], DELETED later; a Namespace turns
    Terminating (creates in it are 403) and goes with its contents after `deleteDelay`; 404
    when missing; DELETE on a collection with selectors).
  * WATCH (watch=1/true/True/t/T/TRUE): chunked NDJSON; resourceVersion unset or "0" → synthetic
    ADDED for the current state then changes (sendInitialEvents=true with
    resourceVersionMatch=NotOlderThan: the same, then a BOOKMARK annotated
    k8s.io/initial-events-end); other → the changes after exactly that version
    from a bounded history (2000 events), or 200 + in-stream ERROR 410 Expired "too old resource
    version" when it fell out; an object leaving/entering the selector is DELETED/ADDED;
    BOOKMARKs when allowWatchBookmarks (every `bookmarkSeconds`, real seconds); the stream ends
    cleanly at timeoutSeconds (default 1800).
  * Controllers write status as kube's do: an Update on the status subresource in
    managedFields (kube-controller-manager for Deployments, with the revision annotation;
    kubelet for Pods; kube-fake-gateway-controller for HTTPRoutes; pilot-discovery for
    VirtualServices).
  * Deployment controller (virtual clock): observes a new generation after `observeDelay`,
    creates Pods (`<deploy>-<hash>-<5>`, template labels + pod-template-hash, ownerReferences to
    the ReplicaSet `<deploy>-<hash>`) one step every `podSeconds`, each Ready one step after it
    was created, removes old pods as new ones become ready; status observedGeneration, replicas,
    updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas (zeros omitted), the
    revision annotation and conditions Available (MinimumReplicasAvailable/-Unavailable) and
    Progressing (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable,
    ProgressDeadlineExceeded after progressDeadlineSeconds of virtual time without progress)
    with kube's messages. A container image whose tag (or, without a tag, whole reference)
    contains an image rule's `match` gets that waiting reason (defaults: "crash" →
    CrashLoopBackOff, "badimage" → ImagePullBackOff); such pods never become ready, so the
    Deployment never completes. The reason "FailedCreate" instead creates no pods and sets a
    ReplicaFailure=True/FailedCreate condition (a quota message). Deleting a Deployment deletes
    its pods.
  * VirtualService controller: status.conditions [Reconciled] and observedGeneration after
    `routeDelay` (route rules apply by name: "accepted": false → Reconciled False).
  * HTTPRoute controller: `routeDelay` virtual seconds after a generation change,
    status.parents[] for each parentRef with Accepted and ResolvedRefs at observedGeneration
    (ResolvedRefs False BackendNotFound when a Service backendRef does not exist); route rules
    can script other outcomes.
  * GET /metrics (no auth), Prometheus text: per Service a counter
    kube_fake_http_requests_total{namespace,service,code}. Each HTTPRoute sends `routeRps`
    (20) requests/s, split evenly over its rules and by backendRefs weights inside a rule
    (VirtualService http[].route[] the same way); a Service no route names gets `serviceRps`
    (20). A Service's requests go to its ready pods (selector match) evenly; a pod whose image
    matches an image rule with "http" (default: "errors" → 500) answers that code, others 200;
    no ready pod → 503.

Control API (JSON, no auth; POST bodies are JSON objects, replies JSON):
  GET  /_fake/script           the current script
  POST /_fake/script           merge keys: speed, observeDelay (0.2), podSeconds (0.3),
                               routeDelay (0.3), deleteDelay (0.3), bookmarkSeconds (5),
                               routeRps (20), serviceRps (20), requireNamespace (true:
                               creating in a missing namespace is 404), imageRules (replace; list of
                               {"match", "reason"?, "message"?, "http"?}), routeRules (replace;
                               list of {"name": regex, "accepted": bool, "acceptedReason",
                               "resolvedRefs": bool, "resolvedReason", "stale": bool, "delay"}),
                               rivals (appended; list of {"path": "/apis/apps/v1/namespaces/
                               default/deployments/web", "manager", "operation": "Update"|
                               "Apply", "apiVersion"?, "subresource"?, "fields": [".spec.replicas",
                               ".spec.template.spec.containers[name=\"web\"].image"]}: that
                               manager owns those fields now, or when the object is created)
  POST /_fake/expire           {"current": true, "next": N, "mode": "event"|"http"}: open
                               watches get an in-stream ERROR 410 Expired and end; the next N
                               watch requests get it at once ("http": a 410 Status reply)
  POST /_fake/drop             {"current": true, "next": N}: close open watches / the next N
                               watches after their first events, without the final chunk
  POST /_fake/fault            {"status": 429|500|503|504, "retryAfter": S?, "count": N (1),
                               "pathRegex": "..." (all), "method": "GET"?, "message"?};
                               {"clear": true} removes all faults
  POST /_fake/token            {"token": "new"}: the accepted bearer token ("" = no auth)
  POST /_fake/groups           {"remove": ["gateway.networking.k8s.io/v1"], "restore": [...]}
  POST /_fake/status           {"path": "/apis/apps/v1/namespaces/default/deployments/web",
                               "status": {...}, "simulate": false}: replace the status (a
                               MODIFIED event); the simulators leave that object alone from now
                               on unless "simulate": true; {"path", "simulate": true} alone
                               hands it back
  POST /_fake/sequence         {"path", "steps": [{"after": SECONDS, "status": {...},
                               "generation": N?}]}: a scripted status sequence on the virtual
                               clock (each step "after" the previous one); the simulators leave
                               the object alone, as with /_fake/status
  POST /_fake/clock            {"advance": SECONDS}: move the virtual clock forward
  GET  /_fake/objects          every stored object (managedFields included)
  GET  /_fake/requests         the request log: [{"seq" (1, 2, ...), "time", "start", "end"
                               (Unix seconds, fractional: its headers read, the answer
                               sent or, for a watch, the stream ended; "end" null while it
                               runs), "method", "path",
                               "query" (name → value, or list when repeated), "contentType",
                               "headers" (Authorization shown as "<redacted>"), "body" (JSON or
                               null), "status"}], without /metrics and health probes;
                               ?since=N: only seq > N; DELETE clears it (seq goes on)
  POST /_fake/reset            back to the start (objects, log, script, faults, token)
"""

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import json
import math
import os
import random
import re
import signal
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRUE_VALUES = ("1", "t", "T", "TRUE", "true", "True")
HISTORY_MAX = 2000
LOG_MAX = 20000

# ---- resource types ----------------------------------------------------------------------------

# group, version, plural, singular, kind, namespaced, shortNames, has status, counts generation,
# is a CRD (all lists atomic, list items carry kind/apiVersion)
RESOURCES = [
    ("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"], True, False, False),
    ("", "v1", "services", "service", "Service", True, ["svc"], True, False, False),
    ("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"], False, False, False),
    ("", "v1", "secrets", "secret", "Secret", True, [], False, False, False),
    ("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"], False,
     False, False),
    ("", "v1", "pods", "pod", "Pod", True, ["po"], True, False, False),
    ("apps", "v1", "deployments", "deployment", "Deployment", True, ["deploy"], True, True,
     False),
    ("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, [], False, False, False),
    ("gateway.networking.k8s.io", "v1", "httproutes", "httproute", "HTTPRoute", True, [], True,
     True, True),
    ("gateway.networking.k8s.io", "v1", "gateways", "gateway", "Gateway", True, ["gtw"], True,
     True, True),
    ("networking.istio.io", "v1", "virtualservices", "virtualservice", "VirtualService", True,
     ["vs"], True, True, True),
    ("networking.istio.io", "v1beta1", "virtualservices", "virtualservice", "VirtualService",
     True, ["vs"], True, True, True),
]


class Res:
    def __init__(self, t):
        (self.group, self.version, self.plural, self.singular, self.kind, self.namespaced,
         self.short, self.has_status, self.counts_generation, self.crd) = t

    @property
    def gv(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def qualified(self):
        """deployments.apps, as kube names a resource in messages ("pods" for the core group)."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural


RES = [Res(t) for t in RESOURCES]
GROUP_VERSIONS = []
for _r in RES:
    if _r.gv not in GROUP_VERSIONS:
        GROUP_VERSIONS.append(_r.gv)


def find_res(gv, plural):
    for r in RES:
        if r.gv == gv and r.plural == plural:
            return r
    return None


def res_by_kind(kind):
    for r in RES:
        if r.kind == kind:
            return r
    return None


# ---- strict field validation tables ------------------------------------------------------------
# A dict maps known keys to the schema of their value; None accepts anything; [S] is a list of S.

ANY = None
META = dict.fromkeys(["name", "generateName", "namespace", "labels", "annotations", "uid",
                      "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "ownerReferences", "finalizers",
                      "managedFields", "selfLink"])
CONTAINER = dict.fromkeys(["name", "image", "command", "args", "workingDir", "ports", "envFrom",
                           "env", "resources", "resizePolicy", "restartPolicy", "volumeMounts",
                           "volumeDevices", "livenessProbe", "readinessProbe", "startupProbe",
                           "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
                           "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"])
PODSPEC = dict.fromkeys([
    "volumes", "restartPolicy", "terminationGracePeriodSeconds", "activeDeadlineSeconds",
    "dnsPolicy", "nodeSelector", "serviceAccountName", "serviceAccount",
    "automountServiceAccountToken", "nodeName", "hostNetwork", "hostPID", "hostIPC",
    "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname", "subdomain",
    "affinity", "schedulerName", "tolerations", "hostAliases", "priorityClassName", "priority",
    "dnsConfig", "readinessGates", "runtimeClassName", "enableServiceLinks", "preemptionPolicy",
    "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers",
    "schedulingGates", "resourceClaims", "resources"])
PODSPEC.update({"containers": [CONTAINER], "initContainers": [CONTAINER],
                "ephemeralContainers": ANY})
TOP = {"apiVersion": ANY, "kind": ANY, "metadata": META}
SCHEMAS = {
    "Deployment": dict(TOP, status=ANY, spec={
        "replicas": ANY, "selector": ANY, "strategy": ANY, "minReadySeconds": ANY,
        "revisionHistoryLimit": ANY, "paused": ANY, "progressDeadlineSeconds": ANY,
        "template": {"metadata": META, "spec": PODSPEC}}),
    "Pod": dict(TOP, status=ANY, spec=PODSPEC),
    "Service": dict(TOP, status=ANY, spec=dict.fromkeys([
        "ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity",
        "loadBalancerIP", "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
        "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
        "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass",
        "internalTrafficPolicy", "trafficDistribution"])),
    "ConfigMap": dict(TOP, data=ANY, binaryData=ANY, immutable=ANY),
    "Secret": dict(TOP, data=ANY, stringData=ANY, type=ANY, immutable=ANY),
    "ServiceAccount": dict(TOP, secrets=ANY, imagePullSecrets=ANY,
                           automountServiceAccountToken=ANY),
    "Namespace": dict(TOP, status=ANY, spec={"finalizers": ANY}),
    "Lease": dict(TOP, spec=dict.fromkeys([
        "holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions",
        "strategy", "preferredHolder"])),
    "HTTPRoute": dict(TOP, status=ANY, spec=dict.fromkeys(["parentRefs", "hostnames", "rules"])),
    "Gateway": dict(TOP, status=ANY, spec=dict.fromkeys([
        "gatewayClassName", "listeners", "addresses", "infrastructure", "backendTLS",
        "allowedListeners"])),
    "VirtualService": dict(TOP, status=ANY, spec=dict.fromkeys([
        "hosts", "gateways", "http", "tls", "tcp", "exportTo"])),
}


def unknown_fields(value, schema, path, out):
    if schema is None:
        return
    if isinstance(schema, list):
        if isinstance(value, list):
            for el in value:
                unknown_fields(el, schema[0], path, out)
        return
    if not isinstance(value, dict):
        return
    for k, v in value.items():
        if k not in schema:
            out.append((path + "." + k).lstrip("."))
        else:
            unknown_fields(v, schema[k], path + "." + k, out)


def drop_fields(obj, dotted):
    parts = dotted.split(".")

    def walk(v, i):
        if isinstance(v, list):
            for el in v:
                walk(el, i)
        elif isinstance(v, dict):
            if i == len(parts) - 1:
                v.pop(parts[i], None)
            elif parts[i] in v:
                walk(v[parts[i]], i + 1)
    walk(obj, 0)


# ---- time ----------------------------------------------------------------------------------------

def now_str():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """The simulators' virtual clock: real time times speed, plus advances."""

    def __init__(self, speed):
        self.speed = speed
        self.base_real = time.monotonic()
        self.base_virtual = 0.0

    def now(self):
        return self.base_virtual + (time.monotonic() - self.base_real) * self.speed

    def set_speed(self, speed):
        v = self.now()
        self.base_real, self.base_virtual, self.speed = time.monotonic(), v, speed

    def advance(self, seconds):
        self.base_virtual += seconds


# ---- field paths (server-side apply ownership) ---------------------------------------------------
# A path is a tuple of map keys (str) and list element keys ("k", keyname, keyvalue).

MARK = object()     # flatten(): the element of an associative list itself


def list_key(name, items, crd):
    if crd or not isinstance(items, list):
        return None
    if name in ("containers", "initContainers", "ephemeralContainers", "env", "volumes",
                "imagePullSecrets"):
        return "name"
    if name == "volumeMounts":
        return "mountPath"
    if name == "conditions":
        return "type"
    if name == "ports":
        if any(isinstance(e, dict) and "containerPort" in e for e in items):
            return "containerPort"
        return "port"
    return None


def flatten(v, prefix, crd, out):
    if isinstance(v, dict):
        if not v and prefix:
            out[prefix] = {}
        for k, x in v.items():
            flatten(x, prefix + (k,), crd, out)
        return out
    key = list_key(prefix[-1], v, crd) if prefix and isinstance(prefix[-1], str) else None
    if key and all(isinstance(e, dict) and key in e for e in v):
        for e in v:
            p = prefix + (("k", key, e[key]),)
            out[p] = MARK
            flatten(e, p, crd, out)
        if not v:
            out[prefix] = []
        return out
    out[prefix] = v
    return out


def owned_paths(obj, crd):
    """The paths a manager owns by sending obj: everything but apiVersion, kind, status and
    metadata other than labels, annotations, finalizers and ownerReferences."""
    out = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        if k == "metadata":
            for mk in ("labels", "annotations", "finalizers", "ownerReferences"):
                if mk in v:
                    flatten(v[mk], ("metadata", mk), crd, out)
            continue
        flatten(v, (k,), crd, out)
    return out


def path_str(p):
    s = ""
    for el in p:
        if isinstance(el, tuple):
            s += "[%s=%s]" % (el[1], json.dumps(el[2]))
        else:
            s += "." + el
    return s


PATH_TOKEN = re.compile(r'\.([^.\[]+)|\[([^=\]]+)=("(?:[^"\\]|\\.)*"|[^\]]+)\]')


def parse_path(s):
    out, pos = [], 0
    while pos < len(s):
        m = PATH_TOKEN.match(s, pos)
        if not m:
            raise ValueError("bad field path %r at %d" % (s, pos))
        if m.group(1) is not None:
            out.append(m.group(1))
        else:
            out.append(("k", m.group(2), json.loads(m.group(3))))
        pos = m.end()
    return tuple(out)


def get_path(obj, p):
    cur = obj
    for el in p:
        if isinstance(el, tuple):
            if not isinstance(cur, list):
                return False, None
            nxt = [e for e in cur if isinstance(e, dict) and e.get(el[1]) == el[2]]
            if not nxt:
                return False, None
            cur = nxt[0]
        else:
            if not isinstance(cur, dict) or el not in cur:
                return False, None
            cur = cur[el]
    return True, cur


def del_path(obj, p):
    found, parent = get_path(obj, p[:-1])
    if not found:
        return
    el = p[-1]
    if isinstance(el, tuple):
        if isinstance(parent, list):
            parent[:] = [e for e in parent if not (isinstance(e, dict) and e.get(el[1]) == el[2])]
    elif isinstance(parent, dict):
        parent.pop(el, None)


def fields_v1(paths):
    root = {}
    for p in sorted(paths, key=lambda x: json.dumps(x, default=str)):
        node = root
        for el in p:
            if isinstance(el, tuple):
                k = "k:" + json.dumps({el[1]: el[2]}, separators=(",", ":"))
            else:
                k = "f:" + el
            node = node.setdefault(k, {})
        if p and isinstance(p[-1], tuple):
            node.setdefault(".", {})
    return root


def merge_apply(live, cfg, prefix, crd):
    """Server-side apply's merge: maps by key, associative lists by key, the rest replaced."""
    if isinstance(cfg, dict) and isinstance(live, dict):
        out = dict(live)
        for k, v in cfg.items():
            out[k] = merge_apply(live[k], v, prefix + (k,), crd) if k in live else copy.deepcopy(v)
        return out
    key = list_key(prefix[-1], cfg, crd) if prefix and isinstance(prefix[-1], str) else None
    if key and isinstance(live, list) and all(isinstance(e, dict) and key in e
                                              for e in cfg + live):
        by_key = {json.dumps(e[key]): e for e in live}
        out, seen = [], set()
        for e in cfg:
            k = json.dumps(e[key])
            seen.add(k)
            out.append(merge_apply(by_key[k], e, prefix + (("k", key, e[key]),), crd)
                       if k in by_key else copy.deepcopy(e))
        out.extend(copy.deepcopy(e) for e in live if json.dumps(e[key]) not in seen)
        return out
    return copy.deepcopy(cfg)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def smp_clean(v):
    """Strategic merge patch: drop kubectl's $setElementOrder/$retainKeys directives and list
    elements marked {"$patch": "delete"} (this fake's merge keeps what the patch omits)."""
    if isinstance(v, dict):
        return {k: smp_clean(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [smp_clean(x) for x in v if not (isinstance(x, dict) and
                                                x.get("$patch") == "delete")]
    return v


def strip_nulls(v):
    if isinstance(v, dict):
        return {k: strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [strip_nulls(x) for x in v]
    return v


def json_pointer(path):
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = json_pointer(op.get("path", ""))
        if not parts:
            raise ValueError("empty path")
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op.get("op")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ValueError("replace operation does not apply: doc is missing key: %s"
                                     % op["path"])
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op.get("value"):
                raise ValueError("testing value %s failed" % op["path"])
        else:
            raise ValueError("unsupported operation %r" % kind)
    return doc


# ---- selectors ----------------------------------------------------------------------------------

class BadRequest(Exception):
    pass


def split_terms(s):
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


LABEL_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"


def parse_label_selector(s):
    out = []
    for t in split_terms(s or ""):
        m = re.fullmatch(r"(%s)\s+(in|notin)\s+\(([^)]*)\)" % LABEL_KEY, t)
        if m:
            vals = set(v.strip() for v in m.group(4).split(",") if v.strip())
            out.append((m.group(1), m.group(3), vals))
            continue
        m = re.fullmatch(r"!\s*(%s)" % LABEL_KEY, t)
        if m:
            out.append((m.group(1), "!", None))
            continue
        m = re.fullmatch(r"(%s)\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)" % LABEL_KEY, t)
        if m:
            out.append((m.group(1), "!=" if m.group(3) == "!=" else "=", m.group(4)))
            continue
        m = re.fullmatch(LABEL_KEY, t)
        if m:
            out.append((t, "exists", None))
            continue
        raise BadRequest("unable to parse requirement: found '%s', expected: identifier" % t)
    return out


def labels_match(sel, labels):
    labels = labels or {}
    for key, op, val in sel:
        if op == "=" and labels.get(key) != val:
            return False
        if op == "!=" and labels.get(key) == val:
            return False
        if op == "in" and labels.get(key) not in val:
            return False
        if op == "notin" and key in labels and labels[key] in val:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


def parse_field_selector(s, res):
    out = []
    for t in split_terms(s or ""):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", t)
        if not m:
            raise BadRequest("invalid selector: '%s'; can't understand '%s'" % (s, t))
        field = m.group(1)
        allowed = ["metadata.name", "metadata.namespace"]
        if res.kind == "Pod":
            allowed += ["status.phase", "spec.nodeName"]
        if field not in allowed:
            raise BadRequest('"%s" is not a known field selector: only "%s"'
                             % (field, '", "'.join(allowed)))
        out.append((field.split("."), m.group(2) == "!=", m.group(3)))
    return out


def fields_match(sel, obj):
    for parts, neg, val in sel:
        found, cur = get_path(obj, tuple(parts))
        cur = cur if found else ""
        if (cur == val) == neg:
            return False
    return True


# ---- state ---------------------------------------------------------------------------------------

DEFAULT_SCRIPT = {
    "speed": 1.0,
    "observeDelay": 0.2,
    "podSeconds": 0.3,
    "routeDelay": 0.3,
    "deleteDelay": 0.3,
    "bookmarkSeconds": 5.0,
    "routeRps": 20.0,
    "serviceRps": 20.0,
    "imageRules": [
        {"match": "crash", "reason": "CrashLoopBackOff"},
        {"match": "badimage", "reason": "ImagePullBackOff"},
        {"match": "errors", "http": 500},
    ],
    "routeRules": [],
    "rivals": [],
    "requireNamespace": True,
}


class Entry:
    def __init__(self, res, obj):
        self.res = res
        self.obj = obj
        # (manager, operation, subresource) → {"paths", "apiVersion", "time"}
        self.managers = {}
        self.sim = {}


class State:
    def __init__(self, speed, token, token_file):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.init_speed = speed
        self.init_token = token
        self.token_file = token_file
        self.reset()

    def reset(self):
        with self.lock:
            # resourceVersions never go back (open watches of the old world expire)
            self.rv = getattr(self, "rv", 100)
            for w in getattr(self, "watchers", {}).values():
                w["expire"] = True
            self.store = {}         # (group, plural, ns, name) → Entry
            self.history = []       # (rv, group, plural, ns, type, old, new)
            self.history_floor = self.rv
            self.log = []
            self.log_seq = 0
            self.script = copy.deepcopy(DEFAULT_SCRIPT)
            self.script["speed"] = self.init_speed
            self.clock = Clock(self.init_speed)
            self.faults = []
            self.token = self.init_token
            self.removed_gvs = set()
            self.expire_next = 0
            self.expire_mode = "event"
            self.drop_next = 0
            self.watchers = {}
            self.traffic = {}       # (ns, service, code) → float
            self.traffic_at = time.monotonic()
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.create_entry(find_res("v1", "namespaces"), {
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                    "spec": {}}, "kube-apiserver", "v1")
            self.cond.notify_all()

    # -- store primitives (callers hold the lock) --

    def next_rv(self):
        self.rv += 1
        return self.rv

    def key(self, res, ns, name):
        return (res.group, res.plural, ns if res.namespaced else "", name)

    def render(self, entry, version=None):
        res = entry.res
        src = entry.obj
        meta = src.get("metadata", {})
        order = ["name", "generateName", "namespace", "uid", "resourceVersion", "generation",
                 "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                 "labels", "annotations", "ownerReferences", "finalizers"]
        m = {k: copy.deepcopy(meta[k]) for k in order if k in meta}
        for k, v in meta.items():
            if k not in m and k != "managedFields":
                m[k] = copy.deepcopy(v)
        mf = []
        for (mgr, op, sub), info in entry.managers.items():
            if not info["paths"]:
                continue
            e = {"manager": mgr, "operation": op, "apiVersion": info["apiVersion"],
                 "time": info["time"], "fieldsType": "FieldsV1",
                 "fieldsV1": fields_v1(info["paths"])}
            if sub:
                e["subresource"] = sub
            mf.append(e)
        if mf:
            m["managedFields"] = mf
        gv = ("%s/%s" % (res.group, version) if res.group else version) if version else \
            src.get("apiVersion", res.gv)
        out = {"kind": res.kind, "apiVersion": gv, "metadata": m}
        for k, v in src.items():
            if k not in ("kind", "apiVersion", "metadata", "status"):
                out[k] = copy.deepcopy(v)
        if "status" in src:
            out["status"] = copy.deepcopy(src["status"])
        return out

    def record(self, etype, entry, old):
        """Store the new resourceVersion on entry (unless DELETED) and add the event."""
        rv = self.next_rv()
        entry.obj["metadata"]["resourceVersion"] = str(rv)
        new = self.render(entry)
        self.history.append((rv, entry.res.group, entry.res.plural,
                             entry.obj["metadata"].get("namespace", ""), etype, old, new))
        if len(self.history) > HISTORY_MAX:
            drop = len(self.history) - HISTORY_MAX
            self.history_floor = self.history[drop - 1][0]
            del self.history[:drop]
        self.cond.notify_all()
        return new

    def create_entry(self, res, obj, manager, version, op="Update", paths=None):
        meta = obj.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_str()
        if res.counts_generation:
            meta["generation"] = 1
        obj["apiVersion"] = res.gv if version is None else (
            "%s/%s" % (res.group, version) if res.group else version)
        obj["kind"] = res.kind
        apply_defaults(res, obj, self)
        e = Entry(res, obj)
        if manager:
            e.managers[(manager, op, "")] = {
                "paths": set(paths if paths is not None else owned_paths(obj, res.crd)),
                "apiVersion": obj["apiVersion"], "time": now_str()}
        self.store[self.key(res, meta.get("namespace", ""), meta["name"])] = e
        self.apply_rivals(e)
        self.record("ADDED", e, None)
        return e

    def apply_rivals(self, entry):
        for r in self.script.get("rivals", []):
            if object_path(entry) != r.get("path"):
                continue
            k = (r["manager"], r.get("operation", "Update"), r.get("subresource", ""))
            info = entry.managers.setdefault(k, {"paths": set(), "time": now_str(),
                                                 "apiVersion": r.get("apiVersion",
                                                                     entry.obj["apiVersion"])})
            for f in r.get("fields", []):
                info["paths"].add(parse_path(f))

    def delete_entry(self, entry):
        meta = entry.obj["metadata"]
        k = self.key(entry.res, meta.get("namespace", ""), meta["name"])
        if self.store.get(k) is not entry:
            return
        del self.store[k]
        old = self.render(entry)
        self.record("DELETED", entry, old)

    def gv_enabled(self, gv):
        return gv not in self.removed_gvs


def object_path(entry):
    res, meta = entry.res, entry.obj["metadata"]
    base = "/api/%s" % res.version if not res.group else "/apis/%s" % res.gv
    if res.namespaced:
        base += "/namespaces/%s" % meta.get("namespace", "")
    return "%s/%s/%s" % (base, res.plural, meta["name"])


def image_pull_policy(image):
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    if ":" not in tail or tail.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        if not isinstance(c, dict):
            continue
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", image_pull_policy(str(c.get("image", ""))))
        for p in c.get("ports", []) or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def apply_defaults(res, obj, state):
    spec = obj.get("spec")
    if res.kind == "Deployment" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        st = spec.setdefault("strategy", {})
        st.setdefault("type", "RollingUpdate")
        if st["type"] == "RollingUpdate":
            ru = st.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        obj.setdefault("status", {})      # a struct, not omitempty: {} until observed
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))
    elif res.kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
    elif res.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName" and "clusterIP" not in spec:
            n = int(hashlib.sha1(obj["metadata"].get("name", "").encode()).hexdigest(), 16)
            spec["clusterIP"] = "10.96.%d.%d" % ((n >> 8) % 250 + 1, n % 250 + 2)
        if "clusterIP" in spec:
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports", []) or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
        obj.setdefault("status", {"loadBalancer": {}})
    elif res.kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
    elif res.kind == "Secret":
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.setdefault("data", {})
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


STATE = None
ARGS = None


# ---- HTTP ----------------------------------------------------------------------------------------

def status_obj(code, reason, message, details=None):
    o = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason}
    if details is not None:
        o["details"] = details
    o["code"] = code
    return o


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def body(self):
        return status_obj(self.code, self.reason, self.message, self.details)


class NotFoundText(Exception):
    pass


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name),
                    {"name": name, "group": res.group, "kind": res.plural})


def single_query(q):
    return {k: (v[0] if len(v) == 1 else v) for k, v in q.items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-fake"
    sys_version = ""

    def setup(self):
        ctx = getattr(self.server, "ssl_ctx", None)
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):
        pass

    # -- plumbing --

    def send_json(self, code, obj, headers=None):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.resp_status = code

    def send_text(self, code, text, ctype="text/plain; charset=utf-8"):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.resp_status = code

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def dispatch(self, method):
        self.resp_status = 0
        start = time.time()
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        q = single_query(query)
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if path.startswith("/_fake/"):
            try:
                self.control(method, path, q, raw)
            except (ValueError, KeyError, TypeError) as e:
                self.send_json(400, {"error": str(e)})
            return
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        entry = {"seq": 0, "time": now_str(), "start": start, "end": None, "method": method,
                 "path": path, "query": q,
                 "contentType": self.headers.get("Content-Type"),
                 "headers": {k: ("<redacted>" if k.lower() == "authorization" else v)
                             for k, v in self.headers.items()},
                 "body": body, "status": None}
        with STATE.lock:
            if path not in ("/metrics", "/healthz", "/livez", "/readyz"):
                STATE.log_seq += 1
                entry["seq"] = STATE.log_seq
                STATE.log.append(entry)
            if len(STATE.log) > LOG_MAX:
                del STATE.log[:len(STATE.log) - LOG_MAX]
        try:
            self.api(method, path, q, raw)
        except ApiError as e:
            self.send_json(e.code, e.body(), e.headers)
        except NotFoundText:
            self.send_text(404, "404 page not found\n")
        except BadRequest as e:
            self.send_json(400, status_obj(400, "BadRequest", str(e)))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as ex:     # a fake bug: say so, in kube's shape, and keep serving
            import traceback
            traceback.print_exc()
            if not self.resp_status:
                self.send_json(500, status_obj(500, "InternalError", "Internal error occurred: "
                                               "kube_fake: %r" % ex))
            else:
                self.close_connection = True
        entry["status"] = self.resp_status
        entry["end"] = time.time()

    # -- auth and faults --

    def authenticated(self):
        with STATE.lock:
            token = STATE.token
        if STATE.token_file and token == STATE.init_token:
            try:
                with open(STATE.token_file) as f:
                    token = f.read().strip()
            except OSError:
                token = ""
            if not token:
                token = None        # an unreadable or empty token file lets nobody in
        if token == "" and not ARGS.client_ca:
            return True
        if ARGS.client_ca:
            try:
                if self.request.getpeercert():
                    return True
            except (AttributeError, ValueError):
                pass
            if not token:
                return False
        if token is None:
            return False
        h = self.headers.get("Authorization", "")
        return h == "Bearer " + token

    def fault(self, method, path):
        with STATE.lock:
            for f in STATE.faults:
                if f.get("method") and f["method"] != method:
                    continue
                if f.get("pathRegex") and not re.search(f["pathRegex"], path):
                    continue
                if f["count"] <= 0:
                    continue
                f["count"] -= 1
                code = int(f.get("status", 500))
                reasons = {429: ("TooManyRequests", "Too many requests, please try again later."),
                           500: ("InternalError", "Internal error occurred: injected fault"),
                           503: ("ServiceUnavailable", "the server is currently unable to "
                                 "handle the request"),
                           504: ("Timeout", "the server was unable to return a response in "
                                 "the time allotted, but may still be processing the request")}
                reason, msg = reasons.get(code, ("InternalError", "injected fault"))
                details, headers = {}, {}
                if f.get("retryAfter") is not None:
                    details["retryAfterSeconds"] = int(f["retryAfter"])
                    headers["Retry-After"] = str(int(f["retryAfter"]))
                return ApiError(code, reason, f.get("message", msg), details, headers)
        return None

    # -- the API --

    def api(self, method, path, q, raw):
        if path in ("/healthz", "/livez", "/readyz"):
            return self.send_text(200, "ok")
        if path == "/metrics":
            return self.send_text(200, metrics_text(), "text/plain; version=0.0.4")
        if path != "/version" and not self.authenticated():
            raise ApiError(401, "Unauthorized", "Unauthorized")
        f = self.fault(method, path)
        if f:
            raise f
        if path == "/version":
            return self.send_json(200, {
                "major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-fake",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"})
        if path.startswith("/openapi/"):
            return self.openapi(path)
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts == ["api"]:
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{
                                            "clientCIDR": "0.0.0.0/0",
                                            "serverAddress": "127.0.0.1"}]})
        if parts == ["apis"]:
            return self.send_json(200, api_group_list())
        if parts[0] == "api" and len(parts) >= 2:
            gv, rest = parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) == 2:
            g = api_group(parts[1])
            if not g:
                raise NotFoundText()
            return self.send_json(200, g)
        elif parts[0] == "apis" and len(parts) >= 3:
            gv, rest = parts[1] + "/" + parts[2], parts[3:]
        else:
            raise NotFoundText()
        if gv not in GROUP_VERSIONS or not STATE.gv_enabled(gv):
            raise NotFoundText()
        if not rest:
            if method != "GET":
                raise NotFoundText()
            return self.send_json(200, resource_list(gv))
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and find_res(gv, rest[2]) \
                and find_res(gv, rest[2]).namespaced:
            ns, rest = rest[1], rest[2:]
        res = find_res(gv, rest[0])
        if res is None or len(rest) > 3:
            raise NotFoundText()
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub and (sub != "status" or not res.has_status):
            raise NotFoundText()
        if res.namespaced and ns is None and name is not None:
            raise NotFoundText()
        version = gv.split("/")[-1]
        if name is None:
            if method == "GET" and q.get("watch") in TRUE_VALUES:
                return self.watch(res, ns, q, version)
            if method == "GET":
                return self.send_json(200, do_list(res, ns, q, version))
            if method == "POST":
                code, obj, warn = do_create(res, ns, q, raw, self.headers, version)
                return self.send_json(code, obj, {"Warning": warn} if warn else None)
            if method == "DELETE" and res.kind != "Namespace":
                return self.send_json(200, do_delete_collection(res, ns, q, raw, version))
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        if method == "GET":
            return self.send_json(200, do_get(res, ns, name, version))
        if method == "PUT":
            obj, warn = do_put(res, ns, name, sub, q, raw, self.headers, version)
            return self.send_json(200, obj, {"Warning": warn} if warn else None)
        if method == "PATCH":
            code, obj, warn = do_patch(res, ns, name, sub, q, raw, self.headers, version)
            return self.send_json(code, obj, {"Warning": warn} if warn else None)
        if method == "DELETE":
            return self.send_json(200, do_delete(res, ns, name, q, raw, version))
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")

    def openapi(self, path):
        if path == "/openapi/v2":
            # kubectl before 1.28 downloads it (protobuf) before it looks at v3: an empty
            # gnostic Document {swagger: "2.0", info: {title, version}}, so that it skips its
            # own schema validation and leaves it to the server
            body = pb_string(1, "2.0") + pb_field(2, pb_string(1, "Kubernetes (kube-fake)") +
                                                  pb_string(2, "v1.32.0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.resp_status = 200
            return None
        if path == "/openapi/v3":
            paths = {}
            for gv in GROUP_VERSIONS:
                if not STATE.gv_enabled(gv):
                    continue
                rel = "api/v1" if gv == "v1" else "apis/" + gv
                paths[rel] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (
                    rel, hashlib.sha1(rel.encode()).hexdigest()[:16].upper())}
            return self.send_json(200, {"paths": paths})
        rel = path[len("/openapi/v3/"):] if path.startswith("/openapi/v3/") else None
        gv = None
        if rel == "api/v1":
            gv = "v1"
        elif rel and rel.startswith("apis/"):
            gv = rel[5:]
        if gv not in GROUP_VERSIONS or not STATE.gv_enabled(gv):
            raise NotFoundText()
        return self.send_json(200, openapi_doc(gv))

    # -- watch --

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.resp_status = 200

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, etype, obj):
        self.chunk((json.dumps({"type": etype, "object": obj}) + "\n").encode())

    def watch(self, res, ns, q, version):
        rv = q.get("resourceVersion", "")
        lsel = parse_label_selector(q.get("labelSelector"))
        fsel = parse_field_selector(q.get("fieldSelector"), res)
        try:
            timeout = float(q.get("timeoutSeconds") or 1800)
        except ValueError:
            raise BadRequest("invalid timeoutSeconds")
        bookmarks = q.get("allowWatchBookmarks") in TRUE_VALUES
        gv = res.gv

        def match(o):
            if o is None:
                return False
            if ns is not None and o["metadata"].get("namespace") != ns:
                return False
            return labels_match(lsel, o["metadata"].get("labels")) and fields_match(fsel, o)

        def with_version(o):
            o = copy.deepcopy(o)
            o["apiVersion"] = gv
            return o

        initial, expired_now, drop_after_initial = [], None, False
        with STATE.lock:
            if STATE.expire_next > 0:
                STATE.expire_next -= 1
                if STATE.expire_mode == "http":
                    raise ApiError(410, "Expired", "too old resource version: %s (%d)"
                                   % (rv or "0", STATE.rv))
                expired_now = rv or "0"
            if STATE.drop_next > 0:
                STATE.drop_next -= 1
                drop_after_initial = True
            initial_end = q.get("sendInitialEvents") in TRUE_VALUES
            if initial_end and q.get("resourceVersionMatch") != "NotOlderThan":
                raise ApiError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: '
                               'resourceVersionMatch: Forbidden: sendInitialEvents requires '
                               'setting resourceVersionMatch to NotOlderThan')
            if rv in ("", "0") or initial_end:
                for k in sorted(STATE.store):
                    e = STATE.store[k]
                    if e.res.group == res.group and e.res.plural == res.plural:
                        o = STATE.render(e)
                        if match(o):
                            initial.append(o)
                last = STATE.rv
            else:
                try:
                    last = int(rv)
                except ValueError:
                    raise ApiError(500, "InternalError",
                                   'Internal error occurred: strconv.ParseUint: parsing "%s": '
                                   'invalid syntax' % rv)
                if last < STATE.history_floor:
                    expired_now = rv
            me = {"expire": False, "drop": False}
            STATE.watchers[id(me)] = me
            current = STATE.rv
        try:
            self.start_chunked()
            if expired_now is not None:
                self.event("ERROR", status_obj(410, "Expired", "too old resource version: %s (%d)"
                                               % (expired_now, current)))
                self.chunk(b"")
                return
            for o in initial:
                self.event("ADDED", with_version(o))
            if initial_end:
                self.event("BOOKMARK", {"kind": res.kind, "apiVersion": gv, "metadata": {
                    "resourceVersion": str(last),
                    "annotations": {"k8s.io/initial-events-end": "true"}}})
            if drop_after_initial:
                self.close_connection = True
                return
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + float(STATE.script.get("bookmarkSeconds", 5))
            while True:
                out, expire, drop, book = [], False, False, None
                with STATE.lock:
                    now = time.monotonic()
                    wait = min(deadline, next_bookmark if bookmarks else deadline) - now
                    if not me["expire"] and not me["drop"] and \
                            (not STATE.history or STATE.history[-1][0] <= last) and wait > 0:
                        STATE.cond.wait(min(wait, 1.0))
                    if me["expire"]:
                        expire = True
                    elif me["drop"]:
                        drop = True
                    elif last < STATE.history_floor:
                        expire = True
                    else:
                        start = bisect.bisect_right(STATE.history, last, key=lambda x: x[0])
                        for (erv, g, pl, ens, etype, old, new) in STATE.history[start:]:
                            last = erv
                            if g != res.group or pl != res.plural:
                                continue
                            om, nm = match(old), match(new)
                            if etype == "DELETED":
                                if om:
                                    out.append(("DELETED", new))
                            elif om and nm:
                                out.append(("MODIFIED", new))
                            elif nm:
                                out.append(("ADDED", new))
                            elif om:
                                out.append(("DELETED", new))
                        last = max(last, STATE.rv) if not out else last
                    current = STATE.rv
                    if bookmarks and time.monotonic() >= next_bookmark:
                        book = str(current)
                        next_bookmark = time.monotonic() + float(
                            STATE.script.get("bookmarkSeconds", 5))
                for etype, o in out:
                    self.event(etype, with_version(o))
                if expire:
                    self.event("ERROR", status_obj(410, "Expired",
                                                   "too old resource version: %s (%d)"
                                                   % (last, current)))
                    self.chunk(b"")
                    return
                if drop:
                    self.close_connection = True
                    return
                if book:
                    self.event("BOOKMARK", {"kind": res.kind, "apiVersion": gv,
                                            "metadata": {"resourceVersion": book}})
                if time.monotonic() >= deadline:
                    self.chunk(b"")
                    return
        finally:
            with STATE.lock:
                STATE.watchers.pop(id(me), None)

    # -- control --

    def control(self, method, path, q, raw):
        body = json.loads(raw) if raw else {}
        what = path[len("/_fake/"):]
        with STATE.lock:
            if what == "script" and method == "GET":
                return self.send_json(200, STATE.script)
            if what == "script":
                for k, v in body.items():
                    if k == "rivals":
                        for r in v:
                            for f in r.get("fields", []):
                                parse_path(f)
                        STATE.script["rivals"].extend(v)
                        for e in STATE.store.values():
                            STATE.apply_rivals(e)
                    elif k == "speed":
                        STATE.script["speed"] = float(v)
                        STATE.clock.set_speed(float(v))
                    elif k in DEFAULT_SCRIPT:
                        STATE.script[k] = v
                    else:
                        raise ValueError("unknown script key %r" % k)
                return self.send_json(200, STATE.script)
            if what == "expire":
                STATE.expire_mode = body.get("mode", "event")
                STATE.expire_next += int(body.get("next", 0))
                n = 0
                if body.get("current", True):
                    for w in STATE.watchers.values():
                        w["expire"] = True
                        n += 1
                STATE.cond.notify_all()
                return self.send_json(200, {"expired": n, "next": STATE.expire_next})
            if what == "drop":
                STATE.drop_next += int(body.get("next", 0))
                n = 0
                if body.get("current", True):
                    for w in STATE.watchers.values():
                        w["drop"] = True
                        n += 1
                STATE.cond.notify_all()
                return self.send_json(200, {"dropped": n, "next": STATE.drop_next})
            if what == "fault":
                if body.get("clear"):
                    STATE.faults = []
                else:
                    f = dict(body)
                    f["count"] = int(f.get("count", 1))
                    if f.get("pathRegex"):
                        re.compile(f["pathRegex"])
                    STATE.faults.append(f)
                return self.send_json(200, {"faults": STATE.faults})
            if what == "token":
                STATE.token = body.get("token", "")
                return self.send_json(200, {"ok": True})
            if what == "groups":
                for gv in body.get("remove", []):
                    STATE.removed_gvs.add(gv)
                for gv in body.get("restore", []):
                    STATE.removed_gvs.discard(gv)
                return self.send_json(200, {"removed": sorted(STATE.removed_gvs)})
            if what == "status":
                e = entry_by_path(body["path"])
                if e is None:
                    return self.send_json(404, {"error": "no object at %s" % body["path"]})
                e.sim["manual"] = not body.get("simulate", False)
                if "status" in body:
                    old = STATE.render(e)
                    e.obj["status"] = body["status"]
                    STATE.record("MODIFIED", e, old)
                return self.send_json(200, STATE.render(e))
            if what == "sequence":
                e = entry_by_path(body["path"])
                if e is None:
                    return self.send_json(404, {"error": "no object at %s" % body["path"]})
                e.sim["manual"] = True
                at, seq = STATE.clock.now(), []
                for st in body["steps"]:
                    at += float(st.get("after", 0))
                    seq.append((at, st))
                e.sim["sequence"] = seq
                return self.send_json(200, {"steps": len(seq)})
            if what == "clock":
                STATE.clock.advance(float(body.get("advance", 0)))
                STATE.cond.notify_all()
                return self.send_json(200, {"now": STATE.clock.now()})
            if what == "objects":
                return self.send_json(200, {"resourceVersion": str(STATE.rv), "items": [
                    STATE.render(STATE.store[k]) for k in sorted(STATE.store)]})
            if what == "requests" and method == "DELETE":
                STATE.log = []
                return self.send_json(200, {"ok": True})
            if what == "requests":
                since = int(q.get("since", 0))
                return self.send_json(200, [x for x in STATE.log if x["seq"] > since])
            if what == "reset":
                STATE.reset()
                return self.send_json(200, {"ok": True})
        self.send_json(404, {"error": "unknown control path %s" % path})


def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7f
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def pb_field(num, data):
    """A length-delimited protobuf field."""
    return pb_varint(num << 3 | 2) + pb_varint(len(data)) + data


def pb_string(num, s):
    return pb_field(num, s.encode())


def entry_by_path(p):
    for e in STATE.store.values():
        if object_path(e) == p:
            return e
        # the same object under another version of its group
        res = e.res
        for r in RES:
            if r.group == res.group and r.plural == res.plural and r is not res:
                if object_path(Entry(r, e.obj)) == p:
                    return e
    return None


# ---- discovery -----------------------------------------------------------------------------------

def verbs(res):
    return ["create", "delete", "get", "list", "patch", "update", "watch"] + (
        ["deletecollection"] if res.kind != "Namespace" else [])


def resource_list(gv):
    rs = []
    for r in RES:
        if r.gv != gv:
            continue
        rs.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                   "kind": r.kind, "verbs": sorted(verbs(r)),
                   **({"shortNames": r.short} if r.short else {}),
                   **({"categories": ["all"]} if r.kind in ("Deployment", "Service", "Pod")
                      else {})})
        if r.has_status:
            rs.append({"name": r.plural + "/status", "singularName": "", "namespaced":
                       r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs}


def api_group(name):
    versions = [gv for gv in GROUP_VERSIONS if gv.startswith(name + "/") and STATE.gv_enabled(gv)]
    if not versions:
        return None
    vs = [{"groupVersion": gv, "version": gv.split("/")[1]} for gv in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs,
            "preferredVersion": vs[0]}


def api_group_list():
    groups = []
    for gv in GROUP_VERSIONS:
        if "/" not in gv:
            continue
        g = gv.split("/")[0]
        if g not in [x["name"] for x in groups]:
            ag = api_group(g)
            if ag:
                del ag["kind"], ag["apiVersion"]
                groups.append(ag)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def openapi_doc(gv):
    """Enough for kubectl to see that the server validates fields (fieldValidation)."""
    paths = {}
    group, _, version = gv.rpartition("/")
    for r in RES:
        if r.gv != gv:
            continue
        base = ("/api/v1" if not r.group else "/apis/" + gv) + (
            "/namespaces/{namespace}" if r.namespaced else "") + "/" + r.plural
        gvk = {"group": group, "version": version, "kind": r.kind}
        params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string",
                   "uniqueItems": True}},
                  {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                  {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]
        paths[base + "/{name}"] = {
            "get": {"operationId": "read" + r.kind, "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk},
            "put": {"operationId": "replace" + r.kind, "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": params},
            "patch": {"operationId": "patch" + r.kind, "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "parameters": params +
                      [{"name": "force", "in": "query", "schema": {"type": "boolean"}}]},
            "delete": {"operationId": "delete" + r.kind, "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk}}
        paths[base] = {
            "get": {"operationId": "list" + r.kind, "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk},
            "post": {"operationId": "create" + r.kind, "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "parameters": params}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kube-fake)",
                                         "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": {}}}


# ---- verbs ---------------------------------------------------------------------------------------

def ns_of(res, ns):
    return ns if res.namespaced else ""


def check_namespace(res, ns, name):
    """Creating in a namespace that does not exist is 404 (callers hold the lock)."""
    if not res.namespaced or not STATE.script.get("requireNamespace", True):
        return
    e = STATE.store.get(("", "namespaces", "", ns))
    if e is None:
        raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                       {"name": ns, "kind": "namespaces"})
    if "deletionTimestamp" in e.obj["metadata"]:
        raise ApiError(403, "Forbidden", "%s \"%s\" is forbidden: unable to create new content "
                       "in namespace %s because it is being terminated" % (res.qualified, name, ns),
                       {"name": name, "kind": res.plural, "group": res.group, "causes": [{
                           "reason": "NamespaceTerminating",
                           "message": "namespace %s is being terminated" % ns,
                           "field": "metadata.namespace"}]})


def do_get(res, ns, name, version):
    with STATE.lock:
        e = STATE.store.get(STATE.key(res, ns_of(res, ns), name))
        if e is None:
            raise not_found(res, name)
        return STATE.render(e, version)


def do_list(res, ns, q, version):
    lsel = parse_label_selector(q.get("labelSelector"))
    fsel = parse_field_selector(q.get("fieldSelector"), res)
    limit = int(q.get("limit") or 0)
    cont = q.get("continue") or ""
    with STATE.lock:
        want = q.get("resourceVersion") or "0"
        if not want.isdigit():
            raise ApiError(500, "InternalError", 'Internal error occurred: strconv.ParseUint: '
                           'parsing "%s": invalid syntax' % want)
        if int(want) > STATE.rv and not cont:
            # not-older-than a version the store has not reached: wait, then 504
            STATE.cond.wait_for(lambda: STATE.rv >= int(want), timeout=3)
            if int(want) > STATE.rv:
                raise ApiError(504, "Timeout", "Too large resource version: %s, current: %d"
                               % (want, STATE.rv), {"causes": [{
                                   "reason": "ResourceVersionTooLarge",
                                   "message": "Too large resource version"}],
                                   "retryAfterSeconds": 1}, {"Retry-After": "1"})
        list_rv = str(STATE.rv)
        start = None
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont.encode()).decode())
                list_rv, start = tok["rv"], tuple(tok["start"])
            except (ValueError, KeyError, TypeError):
                raise BadRequest("continue key is not valid: illegal base64 data")
        items = []
        for k in sorted(STATE.store):
            e = STATE.store[k]
            if e.res.group != res.group or e.res.plural != res.plural:
                continue
            if ns is not None and k[2] != ns:
                continue
            if start is not None and k <= start:
                continue
            o = STATE.render(e, version)
            if not (labels_match(lsel, o["metadata"].get("labels")) and fields_match(fsel, o)):
                continue
            items.append((k, o))
        meta = {"resourceVersion": list_rv}
        if limit and len(items) > limit:
            last = items[limit - 1][0]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"rv": list_rv, "start": list(last)}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        out = []
        for _, o in items:
            if not res.crd:
                del o["kind"], o["apiVersion"]
            out.append(o)
        return {"kind": res.kind + "List", "apiVersion": res.gv, "metadata": meta, "items": out}


def parse_json_body(raw, res):
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format - "
                       "accepted media types include: application/json, application/yaml, "
                       "application/vnd.kubernetes.protobuf (kube_fake reads JSON only: %s)"
                       % e)
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal %s into Go value of type "
                       "struct" % type(obj).__name__)
    return obj


def check_fields(res, obj, q, apply, name):
    """fieldValidation: returns the Warning header (or None); raises 400 for Strict."""
    mode = q.get("fieldValidation", "Warn" if not apply else "Warn")
    if mode not in ("Ignore", "Warn", "Strict"):
        raise BadRequest('fieldValidation must be one of "Ignore", "Warn" or "Strict"')
    bad = []
    unknown_fields(obj, SCHEMAS.get(res.kind), "", bad)
    if not bad:
        return None
    if mode == "Strict":
        if apply:
            msg = "failed to create typed patch object (%s; %s, Kind=%s): %s" % (
                "%s/%s" % (obj.get("metadata", {}).get("namespace", ""), name) if res.namespaced
                else name, res.gv, res.kind,
                ", ".join(".%s: field not declared in schema" % b for b in bad))
        else:
            msg = '%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (
                res.kind, res.version, res.kind,
                ", ".join('unknown field "%s"' % b for b in bad))
        raise ApiError(400, "BadRequest", msg)
    for b in bad:
        drop_fields(obj, b)
    if mode == "Warn":
        return ", ".join('299 - "unknown field \\"%s\\""' % b for b in bad)
    return None


def validate_object(res, obj, name):
    """A few of kube's validations: 422 Invalid."""
    causes = []
    n = name or ""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", n) or len(n) > 253:
        causes.append(("FieldValueInvalid", "metadata.name", 'Invalid value: "%s": a lowercase '
                       "RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                       "'-' or '.', and must start and end with an alphanumeric character" % n))
    if res.kind == "Deployment":
        spec = obj.get("spec") or {}
        sel = (spec.get("selector") or {})
        if not sel:
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        tl = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if sel and not labels_match([(k, "=", v) for k, v in
                                     (sel.get("matchLabels") or {}).items()], tl):
            causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                           "Invalid value: %s: `selector` does not match template `labels`"
                           % json.dumps(tl)))
        cs = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not cs:
            causes.append(("FieldValueRequired", "spec.template.spec.containers",
                           "Required value"))
        for i, c in enumerate(cs or []):
            if not isinstance(c, dict) or not c.get("image"):
                causes.append(("FieldValueRequired",
                               "spec.template.spec.containers[%d].image" % i, "Required value"))
        r = spec.get("replicas")
        if r is not None and (not isinstance(r, int) or r < 0):
            causes.append(("FieldValueInvalid", "spec.replicas", "Invalid value: %s: must be "
                           "greater than or equal to 0" % json.dumps(r)))
    if res.kind == "HTTPRoute":
        for i, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
            for j, b in enumerate(rule.get("backendRefs") or []):
                w = b.get("weight", 1)
                if not isinstance(w, int) or w < 0 or w > 1000000:
                    causes.append(("FieldValueInvalid",
                                   "spec.rules[%d].backendRefs[%d].weight" % (i, j),
                                   "Invalid value: %s: spec.rules[%d].backendRefs[%d].weight in "
                                   "body should be less than or equal to 1000000" %
                                   (json.dumps(w), i, j)))
    if causes:
        kind = "%s.%s" % (res.kind, res.group) if res.group else res.kind
        msgs = ["%s: %s" % (f, m) for _, f, m in causes]
        msg = '%s "%s" is invalid: %s' % (kind, n, msgs[0] if len(msgs) == 1 else
                                          "[" + ", ".join(msgs) + "]")
        raise ApiError(422, "Invalid", msg, {
            "name": n, "group": res.group, "kind": res.kind,
            "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes]})


def check_meta(res, obj, ns, name):
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        obj["metadata"] = meta = {}
    if name is not None and meta.get("name") not in (None, name):
        raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name "
                       "on the URL (%s)" % (meta.get("name"), name))
    if res.namespaced and ns is not None and meta.get("namespace") not in (None, ns):
        raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                       "match the namespace sent on the request")
    if res.namespaced:
        meta["namespace"] = ns
    kind = obj.get("kind")
    if kind not in (None, res.kind):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format - "
                       "kind %s does not match %s" % (kind, res.kind))


def manager_name(q, headers, default_suffix=""):
    m = q.get("fieldManager")
    if m:
        return m
    ua = headers.get("User-Agent", "unknown")
    return ua.split("/")[0] + default_suffix


def spec_changed(old, new):
    keep = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status",
                                                               "apiVersion", "kind")}
    return keep(old) != keep(new)


def finish_write(res, e, old_obj, version, dry):
    """After e.obj got its new content: defaults, generation, event (unless dry-run)."""
    apply_defaults(res, e.obj, STATE)
    if res.counts_generation and spec_changed(old_obj, e.obj):
        e.obj["metadata"]["generation"] = old_obj["metadata"].get("generation", 1) + 1
    if dry:
        return STATE.render(e, version)
    if json.dumps(e.obj, sort_keys=True) == json.dumps(old_obj, sort_keys=True):
        return STATE.render(e, version)     # a no-op update keeps the resourceVersion
    STATE.record("MODIFIED", e, STATE.render(Entry(res, old_obj)))
    return STATE.render(e, version)


def update_ownership(e, old_obj, manager, op, version, sub=""):
    """An update takes the fields it changed from every other manager (no conflicts)."""
    before = owned_paths(old_obj, e.res.crd)
    after = owned_paths(e.obj, e.res.crd)
    changed = {p for p, v in after.items() if p not in before or before[p] != v}
    if sub == "status":
        changed = set()
        for p, v in flatten(e.obj.get("status", {}), ("status",), e.res.crd, {}).items():
            if get_path(old_obj, p) != (True, v):
                changed.add(p)
    for info in e.managers.values():
        info["paths"] -= changed
    k = (manager, op, sub)
    info = e.managers.setdefault(k, {"paths": set(), "apiVersion": "", "time": ""})
    info["paths"] |= changed
    info["paths"] &= set(after) | ({p for p in info["paths"] if p[0] == "status"})
    info["apiVersion"] = "%s/%s" % (e.res.group, version) if e.res.group else version
    info["time"] = now_str()
    for k2 in [k2 for k2, i in e.managers.items() if not i["paths"]]:
        del e.managers[k2]


def do_create(res, ns, q, raw, headers, version):
    obj = parse_json_body(raw, res)
    warn = check_fields(res, obj, q, False, (obj.get("metadata") or {}).get("name"))
    check_meta(res, obj, ns, None)
    meta = obj["metadata"]
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(
            random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    name = meta.get("name")
    if not name:
        raise ApiError(422, "Invalid", "%s \"\" is invalid: metadata.name: Required value: name "
                       "or generateName is required" % res.kind, {"kind": res.kind, "causes": [{
                           "reason": "FieldValueRequired", "message": "Required value: name or "
                           "generateName is required", "field": "metadata.name"}]})
    if "managedFields" in meta:
        meta.pop("managedFields")
    for k in ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp"):
        meta.pop(k, None)
    if res.has_status and res.kind not in ("Pod", "Namespace"):
        obj.pop("status", None)
    validate_object(res, obj, name)
    with STATE.lock:
        k = STATE.key(res, ns_of(res, ns), name)
        if k in STATE.store:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, name),
                           {"name": name, "group": res.group, "kind": res.plural})
        check_namespace(res, ns, name)
        if q.get("dryRun") == "All":
            e = Entry(res, obj)
            apply_defaults(res, obj, STATE)
            return 201, STATE.render(e, version), warn
        e = STATE.create_entry(res, obj, manager_name(q, headers), version)
        return 201, STATE.render(e, version), warn


def do_put(res, ns, name, sub, q, raw, headers, version):
    obj = parse_json_body(raw, res)
    warn = check_fields(res, obj, q, False, name) if sub is None else None
    check_meta(res, obj, ns, name)
    with STATE.lock:
        e = STATE.store.get(STATE.key(res, ns_of(res, ns), name))
        if e is None:
            raise not_found(res, name)
        rv = obj["metadata"].get("resourceVersion")
        if rv is not None and rv != e.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object '
                           "has been modified; please apply your changes to the latest version "
                           "and try again" % (res.qualified, name),
                           {"name": name, "group": res.group, "kind": res.plural})
        old = copy.deepcopy(e.obj)
        new = copy.deepcopy(e.obj)
        if sub == "status":
            new["status"] = obj.get("status", {})
        else:
            validate_object(res, obj, name)
            keep = {k: old["metadata"][k] for k in ("uid", "creationTimestamp", "generation",
                                                    "resourceVersion", "deletionTimestamp")
                    if k in old["metadata"]}
            new = {k: v for k, v in obj.items()}
            new["metadata"] = dict(obj["metadata"], **keep)
            new["metadata"].pop("managedFields", None)
            new["apiVersion"], new["kind"] = old["apiVersion"], res.kind
            if res.has_status and "status" in old:
                new["status"] = old["status"]
            elif res.has_status:
                new.pop("status", None)
        e.obj, old_managers = new, copy.deepcopy(e.managers)
        update_ownership(e, old, manager_name(q, headers), "Update", version, sub or "")
        if q.get("dryRun") == "All":
            r = STATE.render(e, version)
            e.obj, e.managers = old, old_managers
            return r, warn
        return finish_write(res, e, old, version, False), warn


def do_patch(res, ns, name, sub, q, raw, headers, version):
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
    dry = q.get("dryRun") == "All"
    if ctype == "application/apply-patch+yaml":
        return do_apply(res, ns, name, sub, q, raw, version, dry)
    if "force" in q:
        raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: '
                       "may not be specified for non-apply patch", {
                           "group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                               "reason": "FieldValueForbidden", "message": "Forbidden: may not "
                               "be specified for non-apply patch", "field": "force"}]})
    if ctype not in ("application/merge-patch+json", "application/json-patch+json",
                     "application/strategic-merge-patch+json"):
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                       "format - accepted media types include: application/json-patch+json, "
                       "application/merge-patch+json, application/apply-patch+yaml"
                       + ("" if res.crd else ", application/strategic-merge-patch+json"))
    if ctype == "application/strategic-merge-patch+json" and res.crd:
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                       "format - accepted media types include: application/json-patch+json, "
                       "application/merge-patch+json, application/apply-patch+yaml")
    try:
        patch = json.loads(raw or b"null")
    except ValueError as e:
        raise BadRequest("error decoding patch: %s" % e)
    with STATE.lock:
        e = STATE.store.get(STATE.key(res, ns_of(res, ns), name))
        if e is None:
            raise not_found(res, name)
        old = copy.deepcopy(e.obj)
        cur = STATE.render(e)
        cur["metadata"].pop("managedFields", None)
        try:
            if ctype == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise ValueError("json patch must be a list of operations")
                new = json_patch(cur, patch)
            elif ctype == "application/merge-patch+json":
                new = merge_patch(cur, patch)
            else:
                if not isinstance(patch, dict):
                    raise ValueError("strategic merge patch must be an object")
                new = strip_nulls(merge_apply(cur, smp_clean(patch), (), res.crd))
                for k, v in patch.items():
                    if v is None:
                        new.pop(k, None)
        except (ValueError, KeyError, IndexError, TypeError) as ex:
            raise ApiError(422, "Invalid", str(ex))
        warn = None
        if sub is None:
            warn = check_fields(res, new, q, False, name)
        rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) \
            else None
        if rv is not None and rv != e.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object '
                           "has been modified; please apply your changes to the latest version "
                           "and try again" % (res.qualified, name),
                           {"name": name, "group": res.group, "kind": res.plural})
        if new.get("metadata", {}).get("name") != name:
            raise BadRequest("metadata.name: Invalid value: the name may not be changed")
        for k in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            if k in old["metadata"]:
                new["metadata"][k] = old["metadata"][k]
        new["metadata"].pop("managedFields", None)
        if sub == "status":
            st = new.get("status")
            new = copy.deepcopy(old)
            new["status"] = st
        elif res.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if sub is None:
            validate_object(res, new, name)
            if res.kind == "Deployment" and (new.get("spec") or {}).get("selector") != \
                    (old.get("spec") or {}).get("selector"):
                raise selector_immutable(res, name, new)
        e.obj, old_managers = new, copy.deepcopy(e.managers)
        update_ownership(e, old, manager_name(q, headers), "Update", version, sub or "")
        if dry:
            r = STATE.render(e, version)
            e.obj, e.managers = old, old_managers
            return 200, r, warn
        return 200, finish_write(res, e, old, version, False), warn


def selector_immutable(res, name, obj):
    sel = (obj.get("spec") or {}).get("selector")
    m = "Invalid value: %s: field is immutable" % json.dumps(sel)
    return ApiError(422, "Invalid", 'Deployment.apps "%s" is invalid: spec.selector: %s'
                    % (name, m), {"name": name, "group": "apps", "kind": "Deployment",
                                  "causes": [{"reason": "FieldValueInvalid", "message": m,
                                              "field": "spec.selector"}]})


def conflict_error(conflicts):
    """conflicts: [(manager key, info, path)] → the 409 of server-side apply."""
    def who(k, info):
        mgr, op, sub = k
        s = 'conflict with "%s"' % mgr
        if sub:
            s += ' with subresource "%s"' % sub
        if op != "Apply":
            s += " using %s" % info["apiVersion"]
        return s
    causes = [{"reason": "FieldManagerConflict", "message": who(k, info), "field": path_str(p)}
              for k, info, p in conflicts]
    if len(conflicts) == 1:
        k, info, p = conflicts[0]
        msg = "Apply failed with 1 conflict: %s: %s" % (who(k, info), path_str(p))
    else:
        by = {}
        for k, info, p in conflicts:
            by.setdefault((k, who(k, info)), []).append(path_str(p))
        lines = []
        for (k, w), ps in sorted(by.items(), key=lambda x: x[0][0][0]):
            lines.append("%s:\n%s" % (w.replace("conflict with", "conflicts with", 1),
                                      "\n".join("- " + x for x in ps)))
        msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(lines))
    return ApiError(409, "Conflict", msg, {"causes": causes})


def do_apply(res, ns, name, sub, q, raw, version, dry):
    manager = q.get("fieldManager")
    if not manager:
        raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                       "Required value: is required for apply patch", {
                           "group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                               "reason": "FieldValueRequired", "message": "Required value: is "
                               "required for apply patch", "field": "fieldManager"}]})
    force = q.get("force") in TRUE_VALUES
    cfg = parse_json_body(raw, res)
    if sub is None:
        warn = check_fields(res, cfg, q, True, name)
    else:
        warn = None
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    if "managedFields" in meta:
        raise BadRequest("metadata.managedFields must be nil")
    if not cfg.get("apiVersion") or not cfg.get("kind"):
        raise BadRequest("apply patches must specify apiVersion and kind")
    if cfg["kind"] != res.kind:
        raise BadRequest("the body of the request was in an unknown format - kind %s does not "
                         "match %s" % (cfg["kind"], res.kind))
    check_meta(res, cfg, ns, name)
    cfg["metadata"]["name"] = name
    cfg = strip_nulls(cfg)
    if sub == "status":
        cfg = {"apiVersion": cfg["apiVersion"], "kind": cfg["kind"], "metadata": cfg["metadata"],
               "status": cfg.get("status", {})}
        cfg_paths = flatten(cfg["status"], ("status",), res.crd, {})
    else:
        cfg.pop("status", None) if res.has_status else None
        cfg_paths = owned_paths(cfg, res.crd)
    sk = (manager, "Apply", sub or "")
    with STATE.lock:
        k = STATE.key(res, ns_of(res, ns), name)
        e = STATE.store.get(k)
        if e is None:
            if sub:
                raise not_found(res, name)
            check_namespace(res, ns, name)
            obj = copy.deepcopy(cfg)
            for x in ("uid", "resourceVersion", "creationTimestamp", "generation"):
                obj["metadata"].pop(x, None)
            validate_object(res, obj, name)
            if dry:
                d = Entry(res, obj)
                apply_defaults(res, obj, STATE)
                obj["apiVersion"] = res.gv
                return 201, STATE.render(d, version), warn
            e = STATE.create_entry(res, obj, manager, version, "Apply", cfg_paths)
            return 201, STATE.render(e, version), warn
        live = copy.deepcopy(e.obj)
        managers = copy.deepcopy(e.managers)
        conflicts = []
        for p, v in cfg_paths.items():
            if v is MARK or isinstance(v, dict):
                continue
            found, lv = get_path(live, p)
            if not found or lv == v:
                continue
            for mk, info in managers.items():
                if mk == sk:
                    continue
                if p in info["paths"]:
                    conflicts.append((mk, info, p))
        if conflicts and not force:
            raise conflict_error(conflicts)
        for mk, info, p in conflicts:
            info["paths"].discard(p)
        # fields this manager gave up: removed when nobody else owns them
        mine = managers.get(sk, {}).get("paths", set())
        others = set()
        for mk, info in managers.items():
            if mk != sk:
                others |= info["paths"]
        for p in sorted(mine - set(cfg_paths), key=len, reverse=True):
            if p not in others and not any(o[:len(p)] == p for o in others):
                del_path(live, p)
        new = merge_apply(live, {x: y for x, y in cfg.items() if x != "metadata"} if sub is None
                          else {"status": cfg["status"]}, (), res.crd)
        new["metadata"] = merge_apply(live["metadata"], {
            x: y for x, y in cfg["metadata"].items() if x in ("labels", "annotations",
                                                              "finalizers", "ownerReferences")},
            ("metadata",), res.crd)
        if res.has_status and sub is None and "status" in live:
            new["status"] = live["status"]
        new["apiVersion"] = e.obj["apiVersion"]
        if sub is None:
            validate_object(res, new, name)
            if res.kind == "Deployment" and (new.get("spec") or {}).get("selector") != \
                    (e.obj.get("spec") or {}).get("selector"):
                raise selector_immutable(res, name, new)
        managers[sk] = {"paths": set(cfg_paths), "time": now_str(),
                        "apiVersion": "%s/%s" % (res.group, version) if res.group else version}
        for mk in [mk for mk, i in managers.items() if not i["paths"]]:
            del managers[mk]
        old = e.obj
        old_managers = e.managers
        e.obj, e.managers = new, managers
        apply_defaults(res, e.obj, STATE)
        if res.counts_generation and spec_changed(old, e.obj):
            e.obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if dry:
            r = STATE.render(e, version)
            e.obj, e.managers = old, old_managers
            return 200, r, warn
        if json.dumps(e.obj, sort_keys=True) == json.dumps(old, sort_keys=True) and \
                {x: y["paths"] for x, y in managers.items()} == \
                {x: y["paths"] for x, y in old_managers.items()}:
            e.managers = old_managers       # a no-op apply changes nothing, not even the time
            return 200, STATE.render(e, version), warn
        STATE.record("MODIFIED", e, STATE.render(Entry(res, old)))
        return 200, STATE.render(e, version), warn


def do_delete_collection(res, ns, q, raw, version):
    lst = do_list(res, ns, {k: v for k, v in q.items() if k in ("labelSelector",
                                                                  "fieldSelector")}, version)
    for o in lst["items"]:
        try:
            do_delete(res, o["metadata"].get("namespace"), o["metadata"]["name"], q, raw, version)
        except ApiError:
            pass
    lst["metadata"] = {"resourceVersion": str(STATE.rv)}
    return lst


def do_delete(res, ns, name, q, raw, version):
    policy = q.get("propagationPolicy")
    dry = q.get("dryRun") == "All"
    if raw:
        try:
            opts = json.loads(raw)
            if isinstance(opts, dict):
                policy = opts.get("propagationPolicy", policy)
                if opts.get("dryRun") == ["All"]:
                    dry = True
        except ValueError:
            raise BadRequest("the body of the request was in an unknown format")
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise ApiError(422, "Invalid", 'DeleteOptions.meta.k8s.io "" is invalid: '
                       'propagationPolicy: Unsupported value: "%s": supported values: '
                       '"Foreground", "Background", "Orphan", "nil"' % policy)
    with STATE.lock:
        e = STATE.store.get(STATE.key(res, ns_of(res, ns), name))
        if e is None:
            raise not_found(res, name)
        if dry:
            return STATE.render(e, version)
        meta = e.obj["metadata"]
        if res.kind == "Namespace":
            if "deletionTimestamp" not in meta:
                old = STATE.render(e)
                meta["deletionTimestamp"] = now_str()
                e.obj["status"] = {"phase": "Terminating"}
                e.sim["delete_at"] = STATE.clock.now() + float(STATE.script["deleteDelay"])
                STATE.record("MODIFIED", e, old)
            return STATE.render(e, version)
        if policy == "Foreground" or meta.get("finalizers"):
            if "deletionTimestamp" not in meta:
                old = STATE.render(e)
                meta["deletionTimestamp"] = now_str()
                meta["deletionGracePeriodSeconds"] = 0
                if policy == "Foreground":
                    fz = meta.setdefault("finalizers", [])
                    if "foregroundDeletion" not in fz:
                        fz.append("foregroundDeletion")
                e.sim["delete_at"] = STATE.clock.now() + float(STATE.script["deleteDelay"])
                STATE.record("MODIFIED", e, old)
            return STATE.render(e, version)
        if policy == "Orphan" and res.kind == "Deployment":
            for p in owned_pods(e):
                p.sim["orphaned"] = True
        uid = meta["uid"]
        STATE.delete_entry(e)
        if res.kind == "Deployment" and policy != "Orphan":
            for p in owned_pods(e):
                STATE.delete_entry(p)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": res.group, "kind": res.plural, "uid": uid}}


# ---- simulators ----------------------------------------------------------------------------------

def deployment_hash(tmpl):
    h = hashlib.sha256(json.dumps(tmpl, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[b % len(alphabet)] for b in h[:10])


def owned_pods(dep):
    meta = dep.obj["metadata"]
    out = []
    for e in list(STATE.store.values()):
        if e.res.kind != "Pod" or e.obj["metadata"].get("namespace") != meta.get("namespace"):
            continue
        if e.sim.get("owner") == meta["uid"]:
            out.append(e)
    return out


def image_rule(image):
    tail = image.rsplit("/", 1)[-1]
    subject = tail.split(":", 1)[1] if ":" in tail else image
    subject = subject.split("@")[0] or image
    for r in STATE.script.get("imageRules", []):
        if r.get("match") and r["match"] in subject:
            return r
    return None


def pod_failure(pod_spec):
    for c in pod_spec.get("containers", []):
        r = image_rule(str(c.get("image", "")))
        if r and r.get("reason"):
            return r, c
    return None, None


def pod_status(pod_spec, ready, created):
    rule, bad = pod_failure(pod_spec)
    statuses = []
    for c in pod_spec.get("containers", []):
        cs = {"name": c.get("name"), "image": c.get("image"), "imageID": "",
              "ready": bool(ready), "restartCount": 0, "started": bool(ready)}
        if rule and c is bad:
            reason = rule["reason"]
            if reason == "CrashLoopBackOff":
                msg = rule.get("message", "back-off 40s restarting failed container=%s pod=..."
                               % c.get("name"))
                cs["restartCount"] = 3
                cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "startedAt": created, "finishedAt": created}}
            elif reason == "ImagePullBackOff":
                msg = rule.get("message", 'Back-off pulling image "%s"' % c.get("image"))
            else:
                msg = rule.get("message", reason)
            cs["state"] = {"waiting": {"reason": reason, "message": msg}}
            cs["ready"] = False
            cs["started"] = False
        elif ready:
            cs["state"] = {"running": {"startedAt": created}}
        else:
            cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
        statuses.append(cs)
    is_ready = bool(ready) and rule is None
    pull = rule is not None and rule.get("reason") in ("ImagePullBackOff", "ErrImagePull")
    cond = lambda t, s: {"type": t, "status": "True" if s else "False",
                         "lastProbeTime": None, "lastTransitionTime": created}
    st = {"phase": "Pending" if pull or (not ready and rule is None) else "Running",
          "conditions": [cond("Initialized", True), cond("Ready", is_ready),
                         cond("ContainersReady", is_ready), cond("PodScheduled", True)],
          "hostIP": "10.0.0.1", "podIP": "10.244.%d.%d" % (random.randint(0, 250),
                                                          random.randint(2, 250)),
          "startTime": created, "containerStatuses": statuses, "qosClass": "BestEffort"}
    for c in st["conditions"]:
        if not c["status"] == "True" and c["type"] in ("Ready", "ContainersReady"):
            c["reason"] = "ContainersNotReady"
            c["message"] = "containers with unready status: [%s]" % " ".join(
                s["name"] for s in statuses if not s["ready"])
    return st


def make_pod(dep, h):
    meta = dep.obj["metadata"]
    tmpl = dep.obj["spec"]["template"]
    name = "%s-%s-%s" % (meta["name"], h, "".join(random.choice("bcdfghjklmnpqrstvwxz2456789")
                                                   for _ in range(5)))
    labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
    labels["pod-template-hash"] = h
    spec = copy.deepcopy(tmpl.get("spec") or {})
    spec["nodeName"] = "kube-fake-node"
    spec.setdefault("serviceAccountName", "default")
    created = now_str()
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "generateName": "%s-%s-" % (meta["name"], h),
        "namespace": meta.get("namespace"), "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": "%s-%s" % (meta["name"], h),
                             "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, meta["uid"] + h)),
                             "controller": True, "blockOwnerDeletion": True}]},
        "spec": spec, "status": pod_status(spec, False, created)}
    if (tmpl.get("metadata") or {}).get("annotations"):
        obj["metadata"]["annotations"] = dict(tmpl["metadata"]["annotations"])
    e = STATE.create_entry(find_res("v1", "pods"), obj, "kube-controller-manager", "v1")
    e.sim.update({"owner": meta["uid"], "hash": h, "ready": False, "born": STATE.clock.now(),
                  "created": created})
    return e


def set_pod_ready(p):
    old = STATE.render(p)
    p.sim["ready"] = True
    p.obj["status"] = pod_status(p.obj["spec"], True, p.sim["created"])
    own_status(p, "kubelet")
    STATE.record("MODIFIED", p, old)


def cond_entry(old_conds, ctype, status, reason, message, progressed):
    now = now_str()
    prev = next((c for c in old_conds if c.get("type") == ctype), None)
    c = {"type": ctype, "status": status,
         "lastUpdateTime": now if (prev is None or progressed or prev.get("reason") != reason)
         else prev.get("lastUpdateTime", now),
         "lastTransitionTime": now if (prev is None or prev.get("status") != status)
         else prev.get("lastTransitionTime", now),
         "reason": reason, "message": message}
    return c


def int_or_percent(v, total, round_up):
    if isinstance(v, int):
        return v
    s = str(v)
    if s.endswith("%"):
        x = total * int(s[:-1]) / 100.0
        return int(math.ceil(x)) if round_up else int(math.floor(x))
    return int(s)


def sim_deployment(e, vnow):
    spec = e.obj.get("spec") or {}
    meta = e.obj["metadata"]
    sim = e.sim
    gen = meta.get("generation", 1)
    if sim.get("manual"):
        return
    if sim.get("gen_seen") != gen:
        sim["gen_seen"] = gen
        sim["observe_at"] = vnow + float(STATE.script["observeDelay"])
        sim["observed"] = False
    if not sim.get("observed"):
        if vnow < sim["observe_at"]:
            return
        sim["observed"] = True
        h = deployment_hash(spec.get("template") or {})
        if sim.get("hash") != h:
            sim["hash"] = h
            sim["new_rs"] = True
            old = STATE.render(e)
            meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = \
                str(sim.get("revision", 0) + 1)
            sim["revision"] = sim.get("revision", 0) + 1
            own_status(e, "kube-controller-manager")
            STATE.record("MODIFIED", e, old)
        sim["last_progress"] = vnow
        sim["deadline"] = False
        sim["next_step"] = vnow
    h = sim["hash"]
    desired = spec.get("replicas", 1)
    pods = owned_pods(e)
    new = [p for p in pods if p.sim.get("hash") == h]
    olds = [p for p in pods if p.sim.get("hash") != h]
    fail_rule, _ = pod_failure((spec.get("template") or {}).get("spec") or {})
    progressed = False
    if vnow >= sim.get("next_step", 0) and not spec.get("paused"):
        sim["next_step"] = vnow + float(STATE.script["podSeconds"])
        step_age = float(STATE.script["podSeconds"]) * 0.99
        for p in new:
            if not p.sim["ready"] and fail_rule is None and vnow - p.sim["born"] >= step_age:
                set_pod_ready(p)
                progressed = True
                break
        ready_new = sum(1 for p in new if p.sim["ready"])
        if olds and (ready_new + len(olds) > desired or ready_new >= desired
                     or not any(p.sim["ready"] for p in olds)):
            removable = [p for p in olds if not p.sim["ready"]] or olds
            if fail_rule is None or not removable[0].sim["ready"] or \
                    ready_new + len(olds) > desired:
                STATE.delete_entry(removable[0])
                progressed = True
        surge = max(1, int_or_percent(
            ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%"),
            desired, True))
        cap = desired if fail_rule is None or not olds else min(desired, surge)
        if len(new) < cap and (fail_rule or {}).get("reason") == "FailedCreate":
            pass        # the ReplicaSet cannot create pods (quota): ReplicaFailure below
        elif len(new) < cap:
            make_pod(e, h)
            progressed = True
        elif len(new) > desired:
            victim = [p for p in new if not p.sim["ready"]] or new
            STATE.delete_entry(victim[-1])
            progressed = True
    pods = owned_pods(e)
    new = [p for p in pods if p.sim.get("hash") == h]
    total = len(pods)
    updated = len(new)
    ready = sum(1 for p in pods if p.sim["ready"])
    available = ready
    if progressed:
        sim["last_progress"] = vnow
    st = dict(e.obj.get("status") or {})
    conds = st.get("conditions") or []
    rs_name = "%s-%s" % (meta["name"], h)
    max_unavail = int_or_percent(((spec.get("strategy") or {}).get("rollingUpdate") or {})
                                 .get("maxUnavailable", "25%"), desired, False)
    if available >= desired - max_unavail:
        avail_c = cond_entry(conds, "Available", "True", "MinimumReplicasAvailable",
                             "Deployment has minimum availability.", False)
    else:
        avail_c = cond_entry(conds, "Available", "False", "MinimumReplicasUnavailable",
                             "Deployment does not have minimum availability.", False)
    complete = updated == desired and total == desired and available == desired
    pds = spec.get("progressDeadlineSeconds", 600)
    if spec.get("paused") and not complete:
        sim["last_progress"] = vnow
        prog_c = cond_entry(conds, "Progressing", "Unknown", "DeploymentPaused",
                            "Deployment is paused", False)
    elif complete:
        prog_c = cond_entry(conds, "Progressing", "True", "NewReplicaSetAvailable",
                            'ReplicaSet "%s" has successfully progressed.' % rs_name, progressed)
        sim["deadline"] = False
    elif sim.get("deadline") or (not spec.get("paused") and vnow - sim["last_progress"] > pds):
        sim["deadline"] = True
        prog_c = cond_entry(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                            'ReplicaSet "%s" has timed out progressing.' % rs_name, False)
    elif sim.pop("new_rs", False):
        prog_c = cond_entry(conds, "Progressing", "True", "NewReplicaSetCreated",
                            'Created new replica set "%s"' % rs_name, True)
    else:
        prev = next((c for c in conds if c.get("type") == "Progressing"), {})
        if prev.get("reason") == "NewReplicaSetCreated" and not progressed:
            prog_c = prev
        else:
            prog_c = cond_entry(conds, "Progressing", "True", "ReplicaSetUpdated",
                                'ReplicaSet "%s" is progressing.' % rs_name, progressed)
    new_st = {"observedGeneration": gen, "replicas": total, "updatedReplicas": updated,
              "readyReplicas": ready, "availableReplicas": available,
              "unavailableReplicas": max(0, desired - available) if total or desired else 0,
              "conditions": [avail_c, prog_c]}
    if (fail_rule or {}).get("reason") == "FailedCreate" and updated < desired:
        new_st["conditions"].append(cond_entry(
            conds, "ReplicaFailure", "True", "FailedCreate", fail_rule.get(
                "message", 'pods "%s-%s" is forbidden: exceeded quota: compute-resources, '
                'requested: cpu=1, used: cpu=4, limited: cpu=4' % (rs_name, "x2b4q")), False))
    new_st = {k: v for k, v in new_st.items() if v not in (0, None)}

    def comparable(s):
        s = copy.deepcopy(s)
        for c in s.get("conditions", []):
            c.pop("lastUpdateTime", None)
            c.pop("lastTransitionTime", None)
        return s
    if comparable(new_st) != comparable(st):
        old = STATE.render(e)
        e.obj["status"] = new_st
        own_status(e, "kube-controller-manager")
        STATE.record("MODIFIED", e, old)


def sim_route(e, vnow):
    sim = e.sim
    meta = e.obj["metadata"]
    if sim.get("manual"):
        return
    gen = meta.get("generation", 1)
    rule = None
    for r in STATE.script.get("routeRules", []):
        if re.search(r.get("name", ""), meta["name"]):
            rule = r
            break
    if sim.get("gen_seen") != gen:
        sim["gen_seen"] = gen
        delay = float((rule or {}).get("delay", STATE.script["routeDelay"]))
        sim["ready_at"] = vnow + delay
    if vnow < sim["ready_at"]:
        return
    spec = e.obj.get("spec") or {}
    ns = meta.get("namespace")
    missing = []
    for r in spec.get("rules") or []:
        for b in r.get("backendRefs") or []:
            if b.get("kind", "Service") != "Service" or b.get("group", "") not in ("", "core"):
                continue
            k = ("", "services", b.get("namespace", ns), b.get("name"))
            if k not in STATE.store:
                missing.append(b.get("name"))
    accepted = (rule or {}).get("accepted", True)
    resolved = (rule or {}).get("resolvedRefs", not missing)
    obs = gen if not (rule or {}).get("stale") else max(1, gen - 1)
    parents = []
    old_parents = (e.obj.get("status") or {}).get("parents") or []
    for pr in spec.get("parentRefs") or []:
        ref = dict(pr)
        ref.setdefault("group", "gateway.networking.k8s.io")
        ref.setdefault("kind", "Gateway")
        prev = next((p for p in old_parents if p.get("parentRef") == ref), {})
        prev_c = prev.get("conditions") or []

        def cond(t, ok, reason, msg):
            pc = next((c for c in prev_c if c.get("type") == t), None)
            s = "True" if ok else "False"
            lt = pc["lastTransitionTime"] if pc and pc.get("status") == s else now_str()
            return {"type": t, "status": s, "reason": reason, "message": msg,
                    "observedGeneration": obs, "lastTransitionTime": lt}
        a_reason = (rule or {}).get("acceptedReason", "Accepted" if accepted
                                    else "NotAllowedByListeners")
        r_reason = (rule or {}).get("resolvedReason", "ResolvedRefs" if resolved
                                    else "BackendNotFound")
        r_msg = "Resolved all the Object references for the Route" if resolved else (
            'Service "%s" not found' % missing[0] if missing and r_reason == "BackendNotFound"
            else r_reason)
        parents.append({"parentRef": ref, "controllerName": "kanaria.dev/kube-fake",
                        "conditions": [
                            cond("Accepted", accepted, a_reason,
                                 "Route is accepted" if accepted else a_reason),
                            cond("ResolvedRefs", resolved, r_reason, r_msg)]})
    new_st = {"parents": parents}
    if new_st != (e.obj.get("status") or {"parents": []}) and \
            json.dumps(new_st, sort_keys=True) != json.dumps(e.obj.get("status"), sort_keys=True):
        old = STATE.render(e)
        e.obj["status"] = new_st
        own_status(e, "kube-fake-gateway-controller")
        STATE.record("MODIFIED", e, old)


def sim_deletion(e, vnow):
    at = e.sim.get("delete_at")
    if at is None or vnow < at:
        return
    if e.res.kind == "Deployment":
        for p in owned_pods(e):
            STATE.delete_entry(p)
    if e.res.kind == "Namespace":
        ns = e.obj["metadata"]["name"]
        for x in list(STATE.store.values()):
            if x.res.namespaced and x.obj["metadata"].get("namespace") == ns:
                STATE.delete_entry(x)
    STATE.delete_entry(e)


def own_status(e, manager):
    """A controller's status write: it owns the status (and the Deployment revision annotation)
    as an Update on the status subresource, as kube-controller-manager does."""
    paths = set(flatten(e.obj.get("status") or {}, ("status",), e.res.crd, {}))
    rev = ("metadata", "annotations", "deployment.kubernetes.io/revision")
    if get_path(e.obj, rev)[0]:
        paths.add(rev)
    gv = e.obj.get("apiVersion", e.res.gv)
    e.managers[(manager, "Update", "status")] = {"paths": paths, "apiVersion": gv,
                                                 "time": now_str()}


def sim_sequence(e, vnow):
    seq = e.sim["sequence"]
    while seq and vnow >= seq[0][0]:
        _, st = seq.pop(0)
        old = STATE.render(e)
        if "generation" in st:
            e.obj["metadata"]["generation"] = int(st["generation"])
        if "status" in st:
            e.obj["status"] = copy.deepcopy(st["status"])
        STATE.record("MODIFIED", e, old)


def sim_virtualservice(e, vnow):
    sim = e.sim
    if sim.get("manual"):
        return
    meta = e.obj["metadata"]
    gen = meta.get("generation", 1)
    rule = next((r for r in STATE.script.get("routeRules", [])
                 if re.search(r.get("name", ""), meta["name"])), None)
    if sim.get("gen_seen") != gen:
        sim["gen_seen"] = gen
        sim["ready_at"] = vnow + float((rule or {}).get("delay", STATE.script["routeDelay"]))
    if vnow < sim["ready_at"]:
        return
    ok = (rule or {}).get("accepted", True)
    obs = gen if not (rule or {}).get("stale") else max(1, gen - 1)
    prev = ((e.obj.get("status") or {}).get("conditions") or [{}])[0]
    s = "True" if ok else "False"
    c = {"type": "Reconciled", "status": s,
         "lastProbeTime": prev.get("lastProbeTime", now_str()),
         "lastTransitionTime": prev["lastTransitionTime"] if prev.get("status") == s
         else now_str(),
         "message": "Reconciled" if ok else (rule or {}).get("acceptedReason", "NotReconciled")}
    new_st = {"conditions": [c], "observedGeneration": obs}
    if new_st != e.obj.get("status"):
        old = STATE.render(e)
        e.obj["status"] = new_st
        own_status(e, "pilot-discovery")
        STATE.record("MODIFIED", e, old)


def simulate():
    vnow = STATE.clock.now()
    for e in list(STATE.store.values()):
        if e.sim.get("sequence"):
            sim_sequence(e, vnow)
        if e.sim.get("delete_at") is not None:
            sim_deletion(e, vnow)
        elif e.res.kind == "Deployment":
            sim_deployment(e, vnow)
        elif e.res.kind == "HTTPRoute":
            sim_route(e, vnow)
        elif e.res.kind == "VirtualService":
            sim_virtualservice(e, vnow)
    # pods whose owner went away (Background deletion) are collected
    uids = {e.obj["metadata"]["uid"] for e in STATE.store.values() if e.res.kind == "Deployment"}
    for e in list(STATE.store.values()):
        if e.res.kind == "Pod" and e.sim.get("owner") and e.sim["owner"] not in uids and \
                not e.sim.get("orphaned"):
            STATE.delete_entry(e)


# ---- traffic -------------------------------------------------------------------------------------

def traffic_tick(dt):
    rates = {}      # (ns, service) → requests/s
    routed = set()
    route_rps = float(STATE.script["routeRps"])
    for e in STATE.store.values():
        meta = e.obj["metadata"]
        ns = meta.get("namespace")
        spec = e.obj.get("spec") or {}
        if e.res.kind == "HTTPRoute":
            rules = spec.get("rules") or []
            for r in rules:
                refs = [b for b in r.get("backendRefs") or []
                        if b.get("kind", "Service") == "Service"]
                for b in refs:
                    routed.add((b.get("namespace", ns), b.get("name")))
                total = sum(int(b.get("weight", 1)) for b in refs)
                if total <= 0:
                    continue
                for b in refs:
                    k = (b.get("namespace", ns), b.get("name"))
                    rates[k] = rates.get(k, 0) + route_rps / len(rules) * \
                        int(b.get("weight", 1)) / total
        elif e.res.kind == "VirtualService":
            http = spec.get("http") or []
            for r in http:
                dests = r.get("route") or []
                for d in dests:
                    host = (d.get("destination") or {}).get("host", "").split(".")[0]
                    routed.add((ns, host))
                ws = [d.get("weight", 100 if len(dests) == 1 else 0) for d in dests]
                total = sum(ws)
                if total <= 0:
                    continue
                for d, w in zip(dests, ws):
                    host = (d.get("destination") or {}).get("host", "").split(".")[0]
                    rates[(ns, host)] = rates.get((ns, host), 0) + route_rps / len(http) * \
                        w / total
    svc_rps = float(STATE.script["serviceRps"])
    pods = [p for p in STATE.store.values() if p.res.kind == "Pod"
            and "deletionTimestamp" not in p.obj["metadata"]]
    for e in STATE.store.values():
        if e.res.kind != "Service":
            continue
        meta = e.obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        sel = (e.obj.get("spec") or {}).get("selector")
        if (ns, name) in routed:
            rate = rates.get((ns, name), 0.0)
        elif sel:
            rate = svc_rps
        else:
            continue
        if rate <= 0:
            continue
        ready = [p for p in pods if p.obj["metadata"].get("namespace") == ns and sel and
                 labels_match([(k, "=", v) for k, v in sel.items()],
                              p.obj["metadata"].get("labels")) and p.sim.get("ready", True)
                 and (p.obj.get("status") or {}).get("conditions") is not None
                 and any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in p.obj["status"]["conditions"])]
        if not ready:
            k = (ns, name, "503")
            STATE.traffic[k] = STATE.traffic.get(k, 0.0) + rate * dt
            continue
        for p in ready:
            code = "200"
            for c in (p.obj.get("spec") or {}).get("containers", []):
                r = image_rule(str(c.get("image", "")))
                if r and r.get("http"):
                    code = str(r["http"])
            k = (ns, name, code)
            STATE.traffic[k] = STATE.traffic.get(k, 0.0) + rate * dt / len(ready)


def metrics_text():
    with STATE.lock:
        now = time.monotonic()
        traffic_tick(now - STATE.traffic_at)
        STATE.traffic_at = now
        lines = ["# HELP kube_fake_http_requests_total Requests the simulated clients sent to "
                 "each Service, by response code.",
                 "# TYPE kube_fake_http_requests_total counter"]
        for (ns, svc, code), v in sorted(STATE.traffic.items()):
            lines.append('kube_fake_http_requests_total{namespace="%s",service="%s",code="%s"} %d'
                         % (ns, svc, code, int(v)))
        return "\n".join(lines) + "\n"


def sim_loop(stop):
    while not stop.is_set():
        with STATE.lock:
            try:
                simulate()
                now = time.monotonic()
                traffic_tick(now - STATE.traffic_at)
                STATE.traffic_at = now
            except Exception as ex:     # the simulators must not die silently
                print("kube_fake: simulator error: %r" % ex, file=sys.stderr, flush=True)
                import traceback
                traceback.print_exc()
        stop.wait(0.05)


# ---- main ----------------------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_ctx = None

    def handle_error(self, request, client_address):
        ex = sys.exc_info()[1]
        if isinstance(ex, (ssl.SSLError, ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def main():
    global STATE, ARGS
    ap = argparse.ArgumentParser(description="kanaria's scripted Kubernetes API fake "
                                 "(loopback only)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--token-file", default="")
    ap.add_argument("--tls-cert", default="")
    ap.add_argument("--tls-key", default="")
    ap.add_argument("--client-ca", default="")
    ap.add_argument("--speed", type=float, default=1.0)
    ARGS = ap.parse_args()
    if ARGS.token and ARGS.token_file:
        ap.error("--token and --token-file exclude each other")
    if bool(ARGS.tls_cert) != bool(ARGS.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if ARGS.client_ca and not ARGS.tls_cert:
        ap.error("--client-ca needs --tls-cert")
    if ARGS.speed <= 0:
        ap.error("--speed must be positive")
    STATE = State(ARGS.speed, ARGS.token, ARGS.token_file)
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        if ARGS.client_ca:
            ctx.load_verify_locations(ARGS.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        srv.ssl_ctx = ctx
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, ARGS.port_file)
    stop = threading.Event()
    sim = threading.Thread(target=sim_loop, args=(stop,), daemon=True)
    sim.start()

    def on_signal(signum, frame):
        stop.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
