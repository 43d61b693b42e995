#!/usr/bin/env python3
"""
kanaria's scripted AWS fake: ECS, ELBv2, CloudWatch and STS on one loopback port, for the ECS
provider's component tests. Python 3 standard library only (Debian 12's /usr/bin/python3).

    aws_fake.py [--port N]     prints "listening PORT" as its first line; SIGTERM ends it

This is kanaria's own model, written from AWS's documented request/reply shapes; it is not AWS
and not moto. It models what moto simplifies away (kanaria's notes: ecs.md sections 1 and 4,
test-doubles.md section 1):

  * the four wire protocols: ECS awsJson1_1 (X-Amz-Target AmazonEC2ContainerServiceV20141113.Op,
    errors {"__type", "message"}), ELBv2 awsQuery (form body, XML <OpResponse><OpResult> replies,
    lists as <member>, errors <ErrorResponse><Error><Type><Code><Message>), CloudWatch awsJson1_0
    (GraniteServiceVersion20100801.GetMetricData / PutMetricData, epoch-second timestamps) and
    STS awsQuery AssumeRoleWithWebIdentity (unsigned); the service of a request is the SigV4
    credential scope's (ecs, elasticloadbalancing, monitoring, sts), or STS for the unsigned
    AssumeRoleWithWebIdentity action;
  * SigV4 verification of every signed request (hmac/hashlib) against the keys /__setup gives:
    unknown key, missing or wrong session token, expired temporary key, wrong signature, a
    signed header that is absent, a scope for another region, and a clock skew above 5 minutes
    ("Signature expired: ..." as ECS says it), each in the protocol's own error shape;
  * ECS task sets under the EXTERNAL deployment controller: STABILIZING at creation and
    STEADY_STATE only after a scripted number of polls, counts that converge over polls (or
    never), computedDesiredCount = ceil(desiredCount x scale%), DRAINING sets that linger and
    count toward the limit of 5 per service (AWS's message, aws-samples/ecs-bg-external-
    controller#6: InvalidParameterException "5 deployments exist on the service. Unable to
    create new TaskSet since this exceeds the maximum limit."), clientToken idempotency (the
    same token on a service gives back the set it made, whatever else was sent: no documented
    mismatch error, so this fake reports none),
    failures[{arn, reason: MISSING}] for unknown services and task sets, UpdateService limited to
    what an EXTERNAL service may change;
  * ELBv2 listeners and rules: DescribeListeners / DescribeRules / DescribeTargetGroups /
    DescribeLoadBalancers paginated with PageSize/Marker/NextMarker, ModifyListener and ModifyRule
    replacing the whole action list (an omitted TargetGroupStickinessConfig reads back disabled),
    a single-target-group forward returned both ways (TargetGroupArn and ForwardConfig, as AWS
    does: moto#4716), weights 0-999, a condition carrying both Values and a *Config refused;
  * CloudWatch GetMetricData over PutMetricData points: MetricStat with an exact dimension match,
    Sum/Average/SampleCount/Maximum/Minimum, Period buckets aligned to multiples of the period,
    newest first, NextToken paging; Expression queries are evaluated by THIS FAKE's own small
    evaluator (+ - * / and parentheses over other query ids and numbers, matched by timestamp,
    division by zero giving no point), not by AWS's metric-math engine;
  * faults: throttling of the Nth..Mth call of an op, counted from when the rule was set (ECS
    ThrottlingException, query Throttling, "Rate exceeded", HTTP 400), 5xx, an HTML 500 page like
    moto's crashes, temporary keys that expire after some calls or seconds, a clock offset.

Auth errors are HTTP 403 here (IncompleteSignature 400), as AWS's common-errors pages list them;
services differ between 400 and 403, so clients must classify by code.

Sources: botocore 1.43.11 service models (ecs 2014-11-13, elbv2 2015-12-01, monitoring
2010-08-01, sts 2011-06-15) for member names and protocols; aws-cli examples
(ecs/create-task-set.rst, describe-task-sets.rst, delete-task-set.rst, elbv2/modify-rule.rst);
the IAM guide "Create a signed AWS API request" for SigV4; AWS's common-errors pages and the
issues quoted in ecs.md for error codes and texts. Where no source gave a message or an order
(an unknown marker, a rule that is a default rule, the default page size), the text and the
choice are this fake's own.

Control endpoints (JSON, no signature):
  POST /__setup   seed state: {"accountId", "region", "users": [{"accessKeyId",
                  "secretAccessKey", "sessionToken"?, "expiresAt"?}], "clusters": [names],
                  "loadBalancers": [{"name", "arn"?, "type"?}], "targetGroups": [{"name",
                  "arn"?, "loadBalancers": [name|arn], "port"?, "protocol"?}], "listeners":
                  [{"loadBalancer", "arn"?, "port", "protocol"?, "defaultActions": [...]}],
                  "rules": [{"listener", "arn"?, "priority", "conditions"?, "actions"}],
                  "webIdentity": [{"roleArn", "token", "durationSeconds"?}],
                  "verifySignatures"?: true}; ELBv2 objects are in botocore's JSON shape.
  POST /__faults  script behaviour (merged into what is there): {"newTaskSets": {knobs} or
                  [{"match": {"service"?, "taskDefinition"?, "externalId"?, "image"?},
                  knobs}] (the first match applies; image: a substring of a container's),
                  "taskSets": {arn-or-id: {knobs}}, "taskSetLimit": 5, "throttle": [{"op",
                  "from", "to", "service"?}], "errors": [{"op", "from", "to", "status"?,
                  "code"?, "html"?}], "delays": [{"op"?, "service"?, "ms"}],
                  "expireKeysAfter": {"calls"|"seconds", "accessKeyId"?},
                  "clockOffsetSeconds": 0, "cloudwatchPagePoints": N}. A delay holds each
                  matching call (no op: every call of the service, or of all) that long before
                  it is served, outside the fake's lock, so that calls sent together overlap
                  as they would on AWS. Knobs: pollsUntilSteady
                  (default 2), neverSteady, runningCap, drainPolls (default 2), drainSeconds.
                  A poll is a DescribeTaskSets or DescribeServices reply that shows the set.
  POST /__tamper  change things behind the client's back: {"rules": [{"ruleArn"|"listenerArn",
                  "actions"} or {"ruleArn", "delete": true}], "listeners": [{"listenerArn",
                  "delete": true}] (its rules go with it), "taskSets": [{"taskSet",
                  "stopTasks": N}]}
  GET  /__log     every call: op, service, params as parsed, status, error code, injected fault,
                  start and end (epoch seconds, microseconds: when the request was read, when
                  its answer was about to be written; calls whose [start, end] overlap were in
                  flight together). ?since=SEQ gives the calls after that one.
  GET  /__state   the state (task sets with status and counts, rules with actions)
  POST /__reset   forget everything
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import math
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape as xml_escape

ECS_PREFIX = "AmazonEC2ContainerServiceV20141113"
CW_PREFIX = "GraniteServiceVersion20100801"
ELB_NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SKEW_SECONDS = 300

# The wire protocol of each SigV4 service name.
SERVICES = {
    "ecs": "json1.1",
    "elasticloadbalancing": "query",
    "monitoring": "json1.0",
    "sts": "query",
}

MOTO_HTML_500 = (
    "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable "
    "to complete your request. Either the server is overloaded or there is an error in the "
    "application.</p>\n"
)


class AwsError(Exception):
    """An error reply in the protocol of the request."""

    def __init__(self, code, message, status=400, sender=True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


# ---- SigV4 ---------------------------------------------------------------------------------

def sigv4_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _uri_encode(s, keep_slash):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_query(query):
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    enc = sorted((_uri_encode(k, False), _uri_encode(v, False)) for k, v in pairs)
    return "&".join("%s=%s" % kv for kv in enc)


def sigv4_signature(secret, method, path, query, headers, signed, body, amz_date, scope):
    """headers: list of (name, value) as received; signed: lower-case names; scope: the
    credential scope "date/region/service/aws4_request". Returns (hex signature, canonical)."""
    lines = []
    for name in signed:
        vals = [re.sub(r"\s+", " ", v.strip()) for n, v in headers if n.lower() == name]
        lines.append("%s:%s\n" % (name, ",".join(vals)))
    payload = None
    for n, v in headers:
        if n.lower() == "x-amz-content-sha256":
            payload = v.strip()
    if payload is None:
        payload = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method, _uri_encode(urllib.parse.unquote(path), True),
                           canonical_query(query), "".join(lines), ";".join(signed), payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = sigv4_key(secret, date, region, service)
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest(), canonical


def parse_authorization(value):
    """{'akid', 'scope', 'signed', 'signature'} of an AWS4-HMAC-SHA256 header, or None."""
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    parts = {}
    for item in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    cred = parts.get("Credential", "").split("/")
    if len(cred) != 5 or "SignedHeaders" not in parts or "Signature" not in parts:
        return None
    return {"akid": cred[0], "scope": "/".join(cred[1:]), "date": cred[1], "region": cred[2],
            "service": cred[3], "signed": parts["SignedHeaders"].split(";"),
            "signature": parts["Signature"]}


# ---- awsQuery ------------------------------------------------------------------------------

def query_unflatten(pairs):
    """Form pairs to a tree: "A.member.2.B" -> {"A": [.., {"B": v}]}; values stay strings."""
    root = {}
    for key, value in pairs:
        parts = key.split(".")
        node = root
        i = 0
        try:
            while i < len(parts):
                p = parts[i]
                if p == "member" and i + 1 < len(parts) and parts[i + 1].isdigit():
                    node["\0list"] = True
                    i += 1
                    p = int(parts[i])
                if i == len(parts) - 1:
                    node[p] = value
                else:
                    node = node.setdefault(p, {})
                i += 1
        except (TypeError, AttributeError):
            raise AwsError("ValidationError", "Malformed parameter name '%s'" % key)

    def fix(n):
        if isinstance(n, dict):
            if n.pop("\0list", False):
                return [fix(n[k]) for k in sorted(k for k in n if isinstance(k, int))]
            return {k: fix(v) for k, v in n.items()}
        return n

    return fix(root)


def xml_of(value, name=None):
    """Serialise a JSON-like value: dict members in order, lists as <member>, bools lower."""
    if isinstance(value, dict):
        inner = "".join(xml_of(v, k) for k, v in value.items() if v is not None)
    elif isinstance(value, list):
        inner = "".join(xml_of(v, "member") for v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = xml_escape(str(value))
    if name is None:
        return inner
    if inner == "":
        return "<%s/>" % name
    return "<%s>%s</%s>" % (name, inner, name)


# ---- small functions ---------------------------------------------------------------------

def now_epoch():
    return round(time.time(), 3)


def iso8601(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def as_int(v, what, lo=None, hi=None, code="ValidationError"):
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise AwsError(code, "Value '%s' at '%s' is not an integer" % (v, what))
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise AwsError(code, "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                       "constraint: Member must have value %s" % (
                           v, what, "greater than or equal to %d" % lo if lo is not None and n < lo
                           else "less than or equal to %d" % hi))
    return n


def as_bool(v):
    if isinstance(v, bool):
        return v
    return str(v).lower() == "true"


def digits(n):
    return "".join(secrets.choice("0123456789") for _ in range(n))


def hexid(n=16):
    return secrets.token_hex(n // 2)


# ---- the state -----------------------------------------------------------------------------

TASK_SET_KNOBS = ("pollsUntilSteady", "neverSteady", "runningCap", "drainPolls", "drainSeconds")


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        self.account = "123456789012"
        self.region = "us-east-1"
        self.keys = {}        # akid -> {secret, token, expiresAt, calls}
        self.verify = True
        self.clusters = {"default"}
        self.taskdefs = {}    # family -> [revision dicts]
        self.services = {}    # (cluster, name) -> service dict
        self.tags = {}        # arn -> [{key, value}]
        self.lbs = []         # dicts in botocore shape
        self.tgs = []
        self.listeners = []
        self.rules = []       # {"ListenerArn", "RuleArn", "Priority", "Conditions", "Actions", "IsDefault"}
        self.web_identity = []
        self.metrics = {}     # (ns, name, dims frozenset) -> [(ts, sum, count, min, max)]
        self.faults = {"taskSetLimit": 5, "throttle": [], "errors": [], "delays": [],
                       "newTaskSets": [],
                       "taskSets": {}, "clockOffsetSeconds": 0, "cloudwatchPagePoints": 100800,
                       "expireKeysAfter": None}
        self.op_calls = {}    # (service, op) -> count since the faults naming it were set
        self.log = []
        self.seq = 0

    # ---- setup ----
    def setup(self, cfg):
        self.account = str(cfg.get("accountId", self.account))
        self.region = cfg.get("region", self.region)
        if "verifySignatures" in cfg:
            self.verify = bool(cfg["verifySignatures"])
        for u in cfg.get("users", []):
            self.keys[u["accessKeyId"]] = {"secret": u["secretAccessKey"],
                                           "token": u.get("sessionToken"),
                                           "expiresAt": u.get("expiresAt"), "calls": 0}
        for c in cfg.get("clusters", []):
            self.clusters.add(c)
        for lb in cfg.get("loadBalancers", []):
            name = lb["name"]
            arn = lb.get("arn") or "arn:aws:elasticloadbalancing:%s:%s:loadbalancer/app/%s/%s" % (
                self.region, self.account, name, hexid())
            self.lbs.append({"LoadBalancerArn": arn, "DNSName": "%s-%s.%s.elb.amazonaws.com" % (
                name, digits(9), self.region), "CanonicalHostedZoneId": "Z35SXDOTRQ7X7K",
                "CreatedTime": iso8601(time.time()), "LoadBalancerName": name,
                "Scheme": lb.get("scheme", "internet-facing"), "VpcId": "vpc-0fake",
                "State": {"Code": "active"}, "Type": lb.get("type", "application"),
                "AvailabilityZones": [], "SecurityGroups": [], "IpAddressType": "ipv4"})
        for tg in cfg.get("targetGroups", []):
            name = tg["name"]
            arn = tg.get("arn") or "arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%s" % (
                self.region, self.account, name, hexid())
            lbarns = [self.lb_arn(x) for x in tg.get("loadBalancers", [])]
            self.tgs.append({"TargetGroupArn": arn, "TargetGroupName": name,
                             "Protocol": tg.get("protocol", "HTTP"), "Port": tg.get("port", 80),
                             "VpcId": "vpc-0fake", "HealthCheckProtocol": "HTTP",
                             "HealthCheckPort": "traffic-port", "HealthCheckEnabled": True,
                             "HealthCheckIntervalSeconds": 30, "HealthCheckTimeoutSeconds": 5,
                             "HealthyThresholdCount": 5, "UnhealthyThresholdCount": 2,
                             "HealthCheckPath": "/", "Matcher": {"HttpCode": "200"},
                             "LoadBalancerArns": lbarns, "TargetType": tg.get("targetType", "ip"),
                             "ProtocolVersion": "HTTP1", "IpAddressType": "ipv4"})
        for ls in cfg.get("listeners", []):
            lbarn = self.lb_arn(ls["loadBalancer"])
            arn = ls.get("arn") or lbarn.replace(":loadbalancer/", ":listener/") + "/" + hexid()
            self.listeners.append({"ListenerArn": arn, "LoadBalancerArn": lbarn,
                                   "Port": ls.get("port", 80), "Protocol": ls.get("protocol", "HTTP"),
                                   "DefaultActions": self.norm_actions(ls.get("defaultActions", []))})
        for r in cfg.get("rules", []):
            larn = self.listener_arn(r["listener"])
            arn = r.get("arn") or larn.replace(":listener/", ":listener-rule/") + "/" + hexid()
            self.rules.append({"ListenerArn": larn, "RuleArn": arn,
                               "Priority": str(r["priority"]),
                               "Conditions": self.norm_conditions(r.get("conditions", [])),
                               "Actions": self.norm_actions(r.get("actions", [])),
                               "IsDefault": False})
        for w in cfg.get("webIdentity", []):
            self.web_identity.append(w)

    def lb_arn(self, ref):
        for lb in self.lbs:
            if ref in (lb["LoadBalancerArn"], lb["LoadBalancerName"]):
                return lb["LoadBalancerArn"]
        raise ValueError("no load balancer %r" % ref)

    def listener_arn(self, ref):
        for ls in self.listeners:
            if ref == ls["ListenerArn"]:
                return ref
        if isinstance(ref, int) or str(ref).isdigit():
            for ls in self.listeners:
                if ls["Port"] == int(ref):
                    return ls["ListenerArn"]
        raise ValueError("no listener %r" % ref)

    # ---- ELBv2 normalisation: what AWS returns for what was sent ----
    def norm_conditions(self, conds):
        out = []
        for c in conds:
            c = dict(c)
            field = c.get("Field")
            cfgkey = {"path-pattern": "PathPatternConfig", "host-header": "HostHeaderConfig"}.get(field)
            if cfgkey:
                vals = c.get("Values") or (c.get(cfgkey) or {}).get("Values") or []
                c = {"Field": field, "Values": list(vals), cfgkey: {"Values": list(vals)}}
            elif field == "http-header":
                hc = c.get("HttpHeaderConfig") or {}
                c = {"Field": field, "HttpHeaderConfig": {
                    "HttpHeaderName": hc.get("HttpHeaderName"),
                    "Values": list(hc.get("Values") or [])}}
            out.append(c)
        return out

    def norm_actions(self, actions):
        """Validate actions (ModifyRule/ModifyListener input, botocore shape, values may be
        strings from a query) and return them as AWS would store and return them."""
        out = []
        tgarns = {t["TargetGroupArn"] for t in self.tgs}
        for i, a in enumerate(actions, 1):
            where = "actions.%d.member" % i
            typ = a.get("Type")
            if not typ:
                raise AwsError("ValidationError", "1 validation error detected: Value null at "
                               "'%s.type' failed to satisfy constraint: Member must not be null"
                               % where)
            order = as_int(a.get("Order", i), where + ".order", 1, 50000)
            act = {"Type": typ, "Order": order}
            if typ == "forward":
                fc = a.get("ForwardConfig")
                single = a.get("TargetGroupArn")
                groups = []
                if fc and fc.get("TargetGroups"):
                    for j, g in enumerate(fc["TargetGroups"], 1):
                        w = as_int(g.get("Weight", 1), "%s.forwardConfig.targetGroups.%d.member."
                                   "weight" % (where, j), 0, 999)
                        groups.append({"TargetGroupArn": g.get("TargetGroupArn"), "Weight": w})
                if single and groups and (len(groups) != 1 or
                                          groups[0]["TargetGroupArn"] != single):
                    raise AwsError("ValidationError", "You cannot specify both a target group "
                                   "ARN and a forward config with other target groups")
                if single and not groups:
                    groups = [{"TargetGroupArn": single, "Weight": 1}]
                if not groups:
                    raise AwsError("ValidationError", "A forward action needs a target group")
                if len(groups) > 5:
                    raise AwsError("TooManyTargetGroups", "You cannot have more than 5 target "
                                   "groups in a forward action")
                for g in groups:
                    if g["TargetGroupArn"] not in tgarns:
                        raise AwsError("TargetGroupNotFound", "One or more target groups not "
                                       "found")
                stick = (fc or {}).get("TargetGroupStickinessConfig") or {}
                st = {"Enabled": as_bool(stick.get("Enabled", False))}
                if st["Enabled"] or "DurationSeconds" in stick:
                    if "DurationSeconds" in stick:
                        st["DurationSeconds"] = as_int(
                            stick["DurationSeconds"], where + ".forwardConfig."
                            "targetGroupStickinessConfig.durationSeconds", 1, 604800)
                if len(groups) == 1:
                    act["TargetGroupArn"] = groups[0]["TargetGroupArn"]
                act["ForwardConfig"] = {"TargetGroups": groups, "TargetGroupStickinessConfig": st}
            else:
                for k, v in a.items():
                    if k not in ("Type", "Order"):
                        act[k] = v
            out.append(act)
        if len(out) > 1 and any("Order" not in a for a in actions):
            raise AwsError("ValidationError", "An action order must be specified when there is "
                           "more than one action")
        return out

    # ---- ECS names and scripted knobs ----
    def arn(self, kind, rest):
        return "arn:aws:ecs:%s:%s:%s/%s" % (self.region, self.account, kind, rest)

    def knobs_for_new(self, service, td, external_id):
        rules = self.faults["newTaskSets"]
        if isinstance(rules, dict):
            rules = [rules]
        for r in rules:
            m = r.get("match", {})
            if "service" in m and m["service"] != service:
                continue
            if "taskDefinition" in m and m["taskDefinition"] not in td:
                continue
            if "externalId" in m and m["externalId"] != external_id:
                continue
            if "image" in m and not any(m["image"] in c.get("image", "")
                                        for c in td_images(td)):
                continue
            return {k: r[k] for k in TASK_SET_KNOBS if k in r}
        return {}


STATE = State()


# ---- ECS -----------------------------------------------------------------------------------

def ecs_require(p, *names):
    for n in names:
        if p.get(n) in (None, ""):
            raise AwsError("InvalidParameterException", "%s can not be blank." % n)


def ecs_cluster(p, required=False):
    name = p.get("cluster") or ("" if required else "default")
    if required and not name:
        raise AwsError("InvalidParameterException", "cluster can not be blank.")
    if name.startswith("arn:"):
        name = name.split("/", 1)[1]
    if name not in STATE.clusters:
        raise AwsError("ClusterNotFoundException", "Cluster not found.")
    return name


def ecs_service_ref(cluster, ref):
    name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
    return STATE.services.get((cluster, name)), name


def ecs_active_service(p):
    cluster = ecs_cluster(p)
    ecs_require(p, "service")
    svc, _ = ecs_service_ref(cluster, p["service"])
    if svc is None:
        raise AwsError("ServiceNotFoundException", "Service not found.")
    if svc["status"] != "ACTIVE":
        raise AwsError("ServiceNotActiveException", "Service was not ACTIVE.")
    return svc


def td_lookup(ref):
    """The task definition for "family", "family:rev" or an ARN (latest ACTIVE for a family)."""
    name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
    fam, _, rev = name.partition(":")
    revs = STATE.taskdefs.get(fam, [])
    if rev:
        for td in revs:
            if str(td["revision"]) == rev:
                return td
        return None
    act = [td for td in revs if td["status"] == "ACTIVE"]
    return act[-1] if act else None


def td_images(arn):
    """The container definitions of a task definition ARN ([] when unknown)."""
    td = td_lookup(arn)
    return td.get("containerDefinitions", []) if td else []


def ts_view(ts, tags=False):
    out = {k: v for k, v in ts.items() if not k.startswith("_")}
    if tags:
        out["tags"] = list(STATE.tags.get(ts["taskSetArn"], []))
    return out


def ts_recompute(svc, ts):
    """After a change of desiredCount or scale: the new target, and stabilising again."""
    if ts["status"] == "DRAINING":
        return
    want = math.ceil(svc["desiredCount"] * ts["scale"]["value"] / 100.0 - 1e-9)
    if want != ts["computedDesiredCount"] or ts["stabilityStatus"] != "STEADY_STATE":
        ts["computedDesiredCount"] = want
        ts["_from"] = ts["runningCount"]
        ts["_progress"] = 0
        ts["stabilityStatus"] = "STABILIZING"
        ts["pendingCount"] = max(0, want - ts["runningCount"])
        ts["stabilityStatusAt"] = now_epoch()
    ts["updatedAt"] = now_epoch()


def ts_poll(svc, ts):
    """One poll of a task set: time passes for it."""
    k = ts["_knobs"]
    if ts["status"] == "DRAINING":
        ts["_progress"] += 1
        n = max(1, int(k.get("drainPolls", 2)))
        left = max(0, n - ts["_progress"])
        ts["runningCount"] = math.floor(ts["_from"] * left / n)
        ts["pendingCount"] = 0
        return
    if ts["stabilityStatus"] == "STEADY_STATE":
        return
    ts["_progress"] += 1
    n = int(k.get("pollsUntilSteady", 2))
    want = ts["computedDesiredCount"]
    start = ts["_from"]
    if n <= 0 or ts["_progress"] >= n:
        run = want
    else:
        run = start + int((want - start) * ts["_progress"] / n)
    cap = k.get("runningCap")
    if cap is not None:
        run = min(run, int(cap))
    ts["runningCount"] = run
    ts["pendingCount"] = max(0, want - run)
    if run == want and not k.get("neverSteady") and (n <= 0 or ts["_progress"] >= n):
        ts["stabilityStatus"] = "STEADY_STATE"
        ts["stabilityStatusAt"] = now_epoch()
        ts["updatedAt"] = now_epoch()


def ts_drained(ts):
    if ts["status"] != "DRAINING":
        return False
    k = ts["_knobs"]
    if ts["_progress"] < max(1, int(k.get("drainPolls", 2))):
        return False
    secs = k.get("drainSeconds")
    return not secs or time.time() - ts["_drainStart"] >= float(secs)


def svc_expire(svc):
    """Task sets whose draining is over leave the service (before the next poll shows them)."""
    for ts in [t for t in svc["taskSets"] if ts_drained(t)]:
        svc["taskSets"].remove(ts)
        STATE.tags.pop(ts["taskSetArn"], None)
    svc_counts(svc)


def svc_poll(svc, sets):
    for ts in sets:
        ts_poll(svc, ts)
    svc_counts(svc)


def svc_counts(svc):
    svc["runningCount"] = sum(t["runningCount"] for t in svc["taskSets"])
    svc["pendingCount"] = sum(t["pendingCount"] for t in svc["taskSets"])


def svc_view(svc, tags=False):
    out = {k: v for k, v in svc.items() if not k.startswith("_") and k != "taskSets"}
    out["taskSets"] = [ts_view(t) for t in svc["taskSets"]]
    if tags:
        out["tags"] = list(STATE.tags.get(svc["serviceArn"], []))
    return out


def find_ts(svc, ref):
    for ts in svc["taskSets"]:
        if ref in (ts["id"], ts["taskSetArn"]):
            return ts
    return None


def ecs_RegisterTaskDefinition(p):
    ecs_require(p, "family")
    if not p.get("containerDefinitions"):
        raise AwsError("ClientException", "Container list cannot be empty.")
    fam = p["family"]
    revs = STATE.taskdefs.setdefault(fam, [])
    rev = len(revs) + 1
    td = {"taskDefinitionArn": STATE.arn("task-definition", "%s:%d" % (fam, rev))}
    for k, v in p.items():
        if k != "tags":
            td[k] = v
    td.update({"revision": rev, "status": "ACTIVE", "requiresAttributes": [],
               "compatibilities": ["EC2"] + (["FARGATE"] if "FARGATE" in
                                              p.get("requiresCompatibilities", []) else []),
               "registeredAt": now_epoch(), "registeredBy": "arn:aws:iam::%s:user/fake" % STATE.account})
    revs.append(td)
    if p.get("tags"):
        STATE.tags[td["taskDefinitionArn"]] = list(p["tags"])
    return {"taskDefinition": td, "tags": list(p.get("tags", []))}


def ecs_DescribeTaskDefinition(p):
    ecs_require(p, "taskDefinition")
    td = td_lookup(p["taskDefinition"])
    if td is None:
        raise AwsError("ClientException", "Unable to describe task definition.")
    out = {"taskDefinition": td}
    if "TAGS" in p.get("include", []):
        out["tags"] = list(STATE.tags.get(td["taskDefinitionArn"], []))
    return out


def ecs_DeregisterTaskDefinition(p):
    ecs_require(p, "taskDefinition")
    ref = p["taskDefinition"]
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        raise AwsError("ClientException", "The specified task definition identifier is invalid. "
                       "Specify a valid name or ARN and revision.")
    td = td_lookup(ref)
    if td is None:
        raise AwsError("ClientException", "The specified task definition does not exist.")
    td["status"] = "INACTIVE"
    td["deregisteredAt"] = now_epoch()
    return {"taskDefinition": td}


SERVICE_CREATE_KEEP = ("loadBalancers", "serviceRegistries", "launchType", "capacityProviderStrategy",
                       "platformVersion", "role", "deploymentConfiguration",
                       "placementConstraints", "placementStrategy", "networkConfiguration",
                       "healthCheckGracePeriodSeconds", "schedulingStrategy",
                       "enableECSManagedTags", "propagateTags", "enableExecuteCommand",
                       "taskDefinition")


def ecs_CreateService(p):
    cluster = ecs_cluster(p)
    ecs_require(p, "serviceName")
    name = p["serviceName"]
    token = p.get("clientToken")
    if token is not None and len(token) > 36:
        raise AwsError("InvalidParameterException", "clientToken can be at most 36 characters.")
    old = STATE.services.get((cluster, name))
    if old is not None and old["status"] != "INACTIVE":
        if token and old.get("_clientToken") == token:
            return {"service": svc_view(old)}
        raise AwsError("InvalidParameterException", "Creation of service was not idempotent.")
    ctl = (p.get("deploymentController") or {}).get("type", "ECS")
    if ctl not in ("ECS", "CODE_DEPLOY", "EXTERNAL"):
        raise AwsError("InvalidParameterException", "Invalid deployment controller type %s." % ctl)
    if ctl == "ECS" and not p.get("taskDefinition"):
        raise AwsError("InvalidParameterException", "TaskDefinition can not be blank.")
    desired = p.get("desiredCount", 0)
    if not isinstance(desired, int) or desired < 0:
        raise AwsError("InvalidParameterException", "desiredCount must be a non-negative integer.")
    arn = STATE.arn("service", "%s/%s" % (cluster, name))
    svc = {"serviceArn": arn, "serviceName": name, "clusterArn": STATE.arn("cluster", cluster),
           "loadBalancers": [], "serviceRegistries": [], "status": "ACTIVE",
           "desiredCount": desired, "runningCount": 0, "pendingCount": 0,
           "launchType": p.get("launchType", "EC2"), "deployments": [],
           "deploymentController": {"type": ctl}, "roleArn": p.get("role"),
           "events": [], "createdAt": now_epoch(), "placementConstraints": [],
           "placementStrategy": [], "schedulingStrategy": "REPLICA",
           "createdBy": "arn:aws:iam::%s:user/fake" % STATE.account,
           "enableECSManagedTags": False, "propagateTags": "NONE",
           "enableExecuteCommand": False, "taskSets": [], "_clientToken": token,
           "_cluster": cluster}
    for k in SERVICE_CREATE_KEEP:
        if k in p and k != "role":
            svc[k] = p[k]
    if ctl == "EXTERNAL":
        svc.pop("taskDefinition", None)
    STATE.services[(cluster, name)] = svc
    STATE.tags[arn] = list(p.get("tags", []))
    return {"service": svc_view(svc)}


def ecs_DescribeServices(p):
    cluster = ecs_cluster(p)
    refs = p.get("services")
    if not refs:
        raise AwsError("InvalidParameterException", "Services cannot be empty.")
    if len(refs) > 10:
        raise AwsError("InvalidParameterException", "Only up to 10 services may be described "
                       "in one call.")
    tags = "TAGS" in p.get("include", [])
    out, failures = [], []
    for ref in refs:
        svc, name = ecs_service_ref(cluster, ref)
        if svc is None:
            failures.append({"arn": STATE.arn("service", "%s/%s" % (cluster, name)),
                             "reason": "MISSING"})
            continue
        if svc["status"] == "DRAINING" and svc.get("_shownDraining"):
            svc["status"] = "INACTIVE"
        svc["_shownDraining"] = svc["status"] == "DRAINING"
        svc_expire(svc)
        svc_poll(svc, list(svc["taskSets"]))
        out.append(svc_view(svc, tags))
    return {"services": out, "failures": failures}


UPDATE_EXTERNAL_OK = {"service", "cluster", "desiredCount", "placementConstraints",
                      "placementStrategy", "healthCheckGracePeriodSeconds",
                      "enableECSManagedTags", "propagateTags"}


def ecs_UpdateService(p):
    svc = ecs_active_service(p)
    if svc["deploymentController"]["type"] == "EXTERNAL":
        bad = sorted(k for k in p if k not in UPDATE_EXTERNAL_OK)
        if bad:
            raise AwsError("InvalidParameterException", "Unable to update %s on a service with "
                           "an EXTERNAL deployment controller; only desiredCount, placement, "
                           "healthCheckGracePeriodSeconds, enableECSManagedTags and propagateTags "
                           "may change (use a new task set)." % ", ".join(bad))
    if "desiredCount" in p:
        d = p["desiredCount"]
        if not isinstance(d, int) or d < 0:
            raise AwsError("InvalidParameterException", "desiredCount must be a non-negative "
                           "integer.")
        svc["desiredCount"] = d
        for ts in svc["taskSets"]:
            ts_recompute(svc, ts)
    for k, v in p.items():
        if k not in ("service", "cluster", "desiredCount"):
            svc[k] = v
    svc_counts(svc)
    return {"service": svc_view(svc)}


def ecs_DeleteService(p):
    svc = ecs_active_service(p)
    if svc["desiredCount"] > 0 and not p.get("force"):
        raise AwsError("InvalidParameterException", "The service cannot be stopped while it is "
                       "scaled above 0.")
    svc["status"] = "DRAINING"
    svc["_shownDraining"] = False
    svc["desiredCount"] = 0
    for ts in svc["taskSets"]:
        ts_begin_drain(ts)
    return {"service": svc_view(svc)}


def ts_begin_drain(ts):
    ts["status"] = "DRAINING"
    ts["stabilityStatus"] = "STABILIZING"
    ts["stabilityStatusAt"] = now_epoch()
    ts["updatedAt"] = now_epoch()
    ts["computedDesiredCount"] = 0
    ts["_from"] = ts["runningCount"]
    ts["_progress"] = 0
    ts["_drainStart"] = time.time()


def ecs_CreateTaskSet(p):
    cluster = ecs_cluster(p, required=True)
    ecs_require(p, "service", "taskDefinition")
    svc = ecs_active_service(p)
    token = p.get("clientToken")
    if token is not None:
        if len(token) > 36:
            raise AwsError("InvalidParameterException", "clientToken can be at most 36 characters.")
        for ts in svc["taskSets"]:
            if ts.get("_clientToken") == token:
                return {"taskSet": ts_view(ts)}
    if svc["deploymentController"]["type"] != "EXTERNAL":
        raise AwsError("InvalidParameterException", "Amazon ECS only supports task set "
                       "management on services configured to use external deployment "
                       "controllers.")
    td = td_lookup(p["taskDefinition"])
    if td is None or td["status"] != "ACTIVE":
        raise AwsError("ClientException", "TaskDefinition not found.")
    svc_expire(svc)
    limit = int(STATE.faults.get("taskSetLimit", 5))
    if len(svc["taskSets"]) >= limit:
        raise AwsError("InvalidParameterException", "%d deployments exist on the service. Unable "
                       "to create new TaskSet since this exceeds the maximum limit." %
                       len(svc["taskSets"]))
    tgarns = {t["TargetGroupArn"] for t in STATE.tgs}
    for lb in p.get("loadBalancers", []):
        if lb.get("targetGroupArn") and lb["targetGroupArn"] not in tgarns:
            raise AwsError("InvalidParameterException", "Target group %s does not exist." %
                           lb["targetGroupArn"])
    scale = p.get("scale") or {"value": 0.0, "unit": "PERCENT"}
    try:
        value = float(scale.get("value", 0.0))
    except (TypeError, ValueError):
        raise AwsError("InvalidParameterException", "scale.value must be a number.")
    if not 0 <= value <= 100 or scale.get("unit", "PERCENT") != "PERCENT":
        raise AwsError("InvalidParameterException", "Scale value must be between 0 and 100 "
                       "PERCENT.")
    tid = "ecs-svc/" + digits(19)
    now = now_epoch()
    ts = {"id": tid,
          "taskSetArn": STATE.arn("task-set", "%s/%s/%s" % (cluster, svc["serviceName"], tid)),
          "serviceArn": svc["serviceArn"], "clusterArn": svc["clusterArn"],
          "externalId": p.get("externalId"), "status": "ACTIVE",
          "taskDefinition": td["taskDefinitionArn"], "computedDesiredCount": 0,
          "pendingCount": 0, "runningCount": 0, "createdAt": now, "updatedAt": now,
          "launchType": p.get("launchType", "EC2" if not p.get("capacityProviderStrategy") else None),
          "capacityProviderStrategy": p.get("capacityProviderStrategy", []),
          "platformVersion": p.get("platformVersion"),
          "networkConfiguration": p.get("networkConfiguration"),
          "loadBalancers": p.get("loadBalancers", []),
          "serviceRegistries": p.get("serviceRegistries", []),
          "scale": {"value": value, "unit": "PERCENT"},
          "stabilityStatus": "STABILIZING", "stabilityStatusAt": now,
          "_clientToken": token, "_progress": 0, "_from": 0,
          "_knobs": STATE.knobs_for_new(svc["serviceName"], td["taskDefinitionArn"],
                                        p.get("externalId"))}
    ts = {k: v for k, v in ts.items() if v is not None or k.startswith("_")}
    ts["computedDesiredCount"] = math.ceil(svc["desiredCount"] * value / 100.0 - 1e-9)
    ts["pendingCount"] = ts["computedDesiredCount"]
    svc["taskSets"].append(ts)
    STATE.tags[ts["taskSetArn"]] = list(p.get("tags", []))
    svc_counts(svc)
    return {"taskSet": ts_view(ts)}


def ecs_DescribeTaskSets(p):
    cluster = ecs_cluster(p, required=True)
    svc = ecs_active_service(p)
    svc_expire(svc)
    tags = "TAGS" in p.get("include", [])
    refs = p.get("taskSets")
    failures = []
    if refs:
        sets = []
        for ref in refs:
            ts = find_ts(svc, ref)
            if ts is None:
                arn = ref if ref.startswith("arn:") else STATE.arn(
                    "task-set", "%s/%s/%s" % (cluster, svc["serviceName"], ref))
                failures.append({"arn": arn, "reason": "MISSING"})
            elif ts not in sets:
                sets.append(ts)
    else:
        sets = list(svc["taskSets"])
    svc_poll(svc, sets)
    return {"taskSets": [ts_view(t, tags) for t in sets], "failures": failures}


def ts_required(p):
    ecs_cluster(p, required=True)
    ecs_require(p, "service")
    svc = ecs_active_service(p)
    key = "primaryTaskSet" if "primaryTaskSet" in p else "taskSet"
    ecs_require(p, key)
    ts = find_ts(svc, p[key])
    if ts is None:
        raise AwsError("TaskSetNotFoundException", "The specified task set does not exist.")
    return svc, ts


def ecs_UpdateTaskSet(p):
    svc, ts = ts_required(p)
    if ts["status"] == "DRAINING":
        raise AwsError("InvalidParameterException", "The task set is DRAINING and cannot be "
                       "updated.")
    sc = p.get("scale")
    if not isinstance(sc, dict) or "value" not in sc:
        raise AwsError("InvalidParameterException", "scale can not be blank.")
    value = float(sc["value"])
    if not 0 <= value <= 100:
        raise AwsError("InvalidParameterException", "Scale value must be between 0 and 100 "
                       "PERCENT.")
    ts["scale"] = {"value": value, "unit": "PERCENT"}
    ts_recompute(svc, ts)
    svc_counts(svc)
    return {"taskSet": ts_view(ts)}


def ecs_UpdateServicePrimaryTaskSet(p):
    svc, ts = ts_required(p)
    if ts["status"] == "DRAINING":
        raise AwsError("InvalidParameterException", "A DRAINING task set cannot be made primary.")
    for other in svc["taskSets"]:
        if other is not ts and other["status"] == "PRIMARY":
            other["status"] = "ACTIVE"
            other["updatedAt"] = now_epoch()
    ts["status"] = "PRIMARY"
    ts["updatedAt"] = now_epoch()
    svc["taskDefinition"] = ts["taskDefinition"]
    for k in ("loadBalancers", "serviceRegistries", "launchType", "capacityProviderStrategy",
              "platformVersion", "networkConfiguration"):
        if k in ts:
            svc[k] = ts[k]
    return {"taskSet": ts_view(ts)}


def ecs_DeleteTaskSet(p):
    svc, ts = ts_required(p)
    if ts["status"] != "DRAINING":
        ts_begin_drain(ts)
    svc_counts(svc)
    return {"taskSet": ts_view(ts)}


def ecs_resource(arn):
    if arn in STATE.tags:
        return True
    for revs in STATE.taskdefs.values():
        if any(td["taskDefinitionArn"] == arn for td in revs):
            return True
    return any(STATE.arn("cluster", c) == arn for c in STATE.clusters)


def ecs_TagResource(p):
    ecs_require(p, "resourceArn")
    arn = p["resourceArn"]
    if not ecs_resource(arn):
        raise AwsError("ResourceNotFoundException", "The specified resource could not be found.")
    cur = STATE.tags.setdefault(arn, [])
    for t in p.get("tags", []):
        cur[:] = [x for x in cur if x["key"] != t["key"]] + [t]
    return {}


def ecs_UntagResource(p):
    ecs_require(p, "resourceArn")
    arn = p["resourceArn"]
    if not ecs_resource(arn):
        raise AwsError("ResourceNotFoundException", "The specified resource could not be found.")
    keys = set(p.get("tagKeys", []))
    STATE.tags[arn] = [x for x in STATE.tags.get(arn, []) if x["key"] not in keys]
    return {}


def ecs_ListTagsForResource(p):
    ecs_require(p, "resourceArn")
    arn = p["resourceArn"]
    if not ecs_resource(arn):
        raise AwsError("ResourceNotFoundException", "The specified resource could not be found.")
    return {"tags": list(STATE.tags.get(arn, []))}


ECS_OPS = {name[4:]: fn for name, fn in globals().items() if name.startswith("ecs_") and
           name[4].isupper()}


# ---- ELBv2 ---------------------------------------------------------------------------------

def elb_page(items, p, what):
    """A page of items for PageSize/Marker; markers are this fake's own opaque strings."""
    size = p.get("PageSize")
    size = as_int(size, "pageSize", 1, 400) if size not in (None, "") else 400
    start = 0
    marker = p.get("Marker")
    if marker:
        try:
            kind, _, idx = base64.b64decode(marker.encode(), validate=True).decode().partition(":")
            start = int(idx)
            if kind != what or not 0 < start < len(items) + 1:
                raise ValueError()
        except (ValueError, UnicodeDecodeError):
            raise AwsError("ValidationError", "Invalid marker '%s'" % marker)
    page = items[start:start + size]
    nxt = None
    if start + size < len(items):
        nxt = base64.b64encode(("%s:%d" % (what, start + size)).encode()).decode()
    return page, nxt


def elb_list(p, name):
    v = p.get(name)
    if v is None:
        return None
    if v == "":
        return []
    return v if isinstance(v, list) else [v]


def lb_view(lb):
    return dict(lb)


def elb_DescribeLoadBalancers(p):
    arns, names = elb_list(p, "LoadBalancerArns"), elb_list(p, "Names")
    items = STATE.lbs
    if arns:
        items = [lb for lb in items if lb["LoadBalancerArn"] in arns]
        if len(items) != len(set(arns)):
            raise AwsError("LoadBalancerNotFound", "One or more load balancers not found")
    if names:
        items = [lb for lb in items if lb["LoadBalancerName"] in names]
        if len(items) != len(set(names)):
            raise AwsError("LoadBalancerNotFound", "One or more load balancers not found")
    page, nxt = elb_page(items, p, "lb")
    return {"LoadBalancers": [lb_view(x) for x in page], "NextMarker": nxt}


def elb_DescribeTargetGroups(p):
    arns, names = elb_list(p, "TargetGroupArns"), elb_list(p, "Names")
    items = STATE.tgs
    if p.get("LoadBalancerArn"):
        if not any(lb["LoadBalancerArn"] == p["LoadBalancerArn"] for lb in STATE.lbs):
            raise AwsError("LoadBalancerNotFound", "One or more load balancers not found")
        items = [t for t in items if p["LoadBalancerArn"] in t["LoadBalancerArns"]]
    if arns:
        items = [t for t in items if t["TargetGroupArn"] in arns]
        if len(items) != len(set(arns)):
            raise AwsError("TargetGroupNotFound", "One or more target groups not found")
    if names:
        items = [t for t in items if t["TargetGroupName"] in names]
        if len(items) != len(set(names)):
            raise AwsError("TargetGroupNotFound", "One or more target groups not found")
    page, nxt = elb_page(items, p, "tg")
    return {"TargetGroups": [dict(t) for t in page], "NextMarker": nxt}


def listener_view(ls):
    return {"ListenerArn": ls["ListenerArn"], "LoadBalancerArn": ls["LoadBalancerArn"],
            "Port": ls["Port"], "Protocol": ls["Protocol"],
            "DefaultActions": [action_view(a) for a in ls["DefaultActions"]]}


def action_view(a):
    """AWS's element order style: Type, Order, TargetGroupArn, ForwardConfig, then the rest."""
    out = {"Type": a["Type"], "Order": a["Order"]}
    if "TargetGroupArn" in a:
        out["TargetGroupArn"] = a["TargetGroupArn"]
    for k, v in a.items():
        if k not in out:
            out[k] = json.loads(json.dumps(v))
    return out


def rule_view(r):
    return {"IsDefault": r["IsDefault"], "Conditions": json.loads(json.dumps(r["Conditions"])),
            "Priority": r["Priority"], "Actions": [action_view(a) for a in r["Actions"]],
            "RuleArn": r["RuleArn"]}


def elb_DescribeListeners(p):
    arns = elb_list(p, "ListenerArns")
    if not arns and not p.get("LoadBalancerArn"):
        raise AwsError("ValidationError", "You must specify either listener ARNs or a load "
                       "balancer ARN")
    items = STATE.listeners
    if p.get("LoadBalancerArn"):
        if not any(lb["LoadBalancerArn"] == p["LoadBalancerArn"] for lb in STATE.lbs):
            raise AwsError("LoadBalancerNotFound", "One or more load balancers not found")
        items = [ls for ls in items if ls["LoadBalancerArn"] == p["LoadBalancerArn"]]
    if arns:
        items = [ls for ls in items if ls["ListenerArn"] in arns]
        if len(items) != len(set(arns)):
            raise AwsError("ListenerNotFound", "One or more listeners not found")
    page, nxt = elb_page(items, p, "listener")
    return {"Listeners": [listener_view(x) for x in page], "NextMarker": nxt}


def listener_rules(larn):
    ls = next(x for x in STATE.listeners if x["ListenerArn"] == larn)
    rs = sorted((r for r in STATE.rules if r["ListenerArn"] == larn),
                key=lambda r: int(r["Priority"]))
    default = {"ListenerArn": larn, "RuleArn": default_rule_arn(ls), "Priority": "default",
               "Conditions": [], "Actions": ls["DefaultActions"], "IsDefault": True}
    return rs + [default]


def default_rule_arn(ls):
    return ls["ListenerArn"].replace(":listener/", ":listener-rule/") + "/" + hashlib.sha256(
        ls["ListenerArn"].encode()).hexdigest()[:16]


def all_rules():
    out = []
    for ls in STATE.listeners:
        out.extend(listener_rules(ls["ListenerArn"]))
    return out


def elb_DescribeRules(p):
    arns = elb_list(p, "RuleArns")
    if p.get("ListenerArn"):
        if not any(x["ListenerArn"] == p["ListenerArn"] for x in STATE.listeners):
            raise AwsError("ListenerNotFound", "One or more listeners not found")
        items = listener_rules(p["ListenerArn"])
    elif arns:
        items = [r for r in all_rules() if r["RuleArn"] in arns]
        if len(items) != len(set(arns)):
            raise AwsError("RuleNotFound", "One or more rules not found")
    else:
        raise AwsError("ValidationError", "You must specify either listener ARN or rule ARNs")
    page, nxt = elb_page(items, p, "rule")
    return {"Rules": [rule_view(r) for r in page], "NextMarker": nxt}


def elb_ModifyListener(p):
    larn = p.get("ListenerArn")
    ls = next((x for x in STATE.listeners if x["ListenerArn"] == larn), None)
    if ls is None:
        raise AwsError("ListenerNotFound", "One or more listeners not found")
    if "DefaultActions" in p:
        acts = STATE.norm_actions(p["DefaultActions"] or [])
        if not acts:
            raise AwsError("ValidationError", "A listener must have at least one default action")
        ls["DefaultActions"] = acts
    for k in ("Port", "Protocol"):
        if k in p:
            ls[k] = int(p[k]) if k == "Port" else p[k]
    return {"Listeners": [listener_view(ls)]}


def elb_ModifyRule(p):
    rarn = p.get("RuleArn")
    if not rarn:
        raise AwsError("ValidationError", "1 validation error detected: Value null at 'ruleArn' "
                       "failed to satisfy constraint: Member must not be null")
    rule = next((r for r in STATE.rules if r["RuleArn"] == rarn), None)
    if rule is None:
        if any(r["RuleArn"] == rarn for r in all_rules()):
            raise AwsError("OperationNotPermitted", "The default rule of a listener cannot be "
                           "modified with ModifyRule; use ModifyListener")
        raise AwsError("RuleNotFound", "One or more rules not found")
    conds = None
    if "Conditions" in p:
        conds = p["Conditions"] or []
        for i, c in enumerate(conds, 1):
            cfgs = [k for k in c if k.endswith("Config")]
            if c.get("Values") and cfgs:
                raise AwsError("ValidationError", "Condition %d: you cannot specify both "
                               "'Values' and '%s' in a condition" % (i, cfgs[0]))
    acts = None
    if "Actions" in p:
        acts = STATE.norm_actions(p["Actions"] or [])
        if not acts:
            raise AwsError("ValidationError", "A rule must have at least one action")
    if conds is not None:
        rule["Conditions"] = STATE.norm_conditions(conds)
    if acts is not None:
        rule["Actions"] = acts
    return {"Rules": [rule_view(rule)]}


def elb_CreateRule(p):
    larn = p.get("ListenerArn")
    for k in ("ListenerArn", "Conditions", "Priority", "Actions"):
        if not p.get(k):
            raise AwsError("ValidationError", "1 validation error detected: Value null at '%s%s' "
                           "failed to satisfy constraint: Member must not be null"
                           % (k[0].lower(), k[1:]))
    if not any(x["ListenerArn"] == larn for x in STATE.listeners):
        raise AwsError("ListenerNotFound", "One or more listeners not found")
    prio = as_int(p["Priority"], "priority", 1, 50000)
    if any(r["ListenerArn"] == larn and int(r["Priority"]) == prio for r in STATE.rules):
        raise AwsError("PriorityInUse", "Priority '%d' is currently in use" % prio)
    conds = p["Conditions"]
    for i, c in enumerate(conds, 1):
        if c.get("Field") == "http-header":
            hc = c.get("HttpHeaderConfig") or {}
            vals = hc.get("Values") or []
            if not hc.get("HttpHeaderName") or not vals:
                raise AwsError("ValidationError", "Condition %d: an http-header condition needs "
                               "HttpHeaderConfig.HttpHeaderName and Values" % i)
            for v in vals:
                if len(v) > 128:
                    raise AwsError("ValidationError", "Condition %d: a value is longer than 128 "
                                   "characters" % i)
    acts = STATE.norm_actions(p["Actions"])
    if not acts:
        raise AwsError("ValidationError", "A rule must have at least one action")
    arn = larn.replace(":listener/", ":listener-rule/") + "/" + hexid()
    rule = {"ListenerArn": larn, "RuleArn": arn, "Priority": str(prio),
            "Conditions": STATE.norm_conditions(conds), "Actions": acts, "IsDefault": False}
    STATE.rules.append(rule)
    if p.get("Tags"):
        STATE.tags[arn] = [{"key": t.get("Key"), "value": t.get("Value")} for t in p["Tags"]]
    return {"Rules": [rule_view(rule)]}


def elb_DeleteRule(p):
    rarn = p.get("RuleArn")
    if not rarn:
        raise AwsError("ValidationError", "1 validation error detected: Value null at 'ruleArn' "
                       "failed to satisfy constraint: Member must not be null")
    rule = next((r for r in STATE.rules if r["RuleArn"] == rarn), None)
    if rule is None:
        if any(r["RuleArn"] == rarn for r in all_rules()):
            raise AwsError("OperationNotPermitted", "A default rule cannot be deleted")
        raise AwsError("RuleNotFound", "One or more rules not found")
    STATE.rules.remove(rule)
    STATE.tags.pop(rarn, None)
    return {}


ELB_OPS = {name[4:]: fn for name, fn in globals().items() if name.startswith("elb_") and
           name[4].isupper()}


# ---- CloudWatch ----------------------------------------------------------------------------

def dims_key(dims):
    return frozenset((d["Name"], d["Value"]) for d in (dims or []))


def cw_PutMetricData(p):
    ns = p.get("Namespace")
    if not ns:
        raise AwsError("MissingParameter", "The parameter Namespace is required.")
    for i, m in enumerate(p.get("MetricData") or [], 1):
        key = (ns, m.get("MetricName"), dims_key(m.get("Dimensions")))
        ts = float(m.get("Timestamp", time.time()))
        pts = STATE.metrics.setdefault(key, [])
        if "StatisticValues" in m:
            sv = m["StatisticValues"]
            pts.append((ts, float(sv["Sum"]), float(sv["SampleCount"]), float(sv["Minimum"]),
                        float(sv["Maximum"])))
        elif "Values" in m:
            counts = m.get("Counts") or [1] * len(m["Values"])
            for v, c in zip(m["Values"], counts):
                pts.append((ts, float(v) * c, float(c), float(v), float(v)))
        elif "Value" in m:
            v = float(m["Value"])
            pts.append((ts, v, 1.0, v, v))
        else:
            raise AwsError("InvalidParameterCombination", "MetricData.member.%d: a Value, Values "
                           "or StatisticValues is required." % i)
    return {}


def cw_stat(pts, stat):
    s = sum(x[1] for x in pts)
    n = sum(x[2] for x in pts)
    if stat == "Sum":
        return s
    if stat == "SampleCount":
        return n
    if stat == "Average":
        return s / n if n else None
    if stat == "Maximum":
        return max(x[4] for x in pts)
    if stat == "Minimum":
        return min(x[3] for x in pts)
    raise AwsError("InvalidParameterValue", "The statistic %s is not supported by this fake "
                   "(Sum, Average, SampleCount, Maximum, Minimum)." % stat)


def cw_metric_series(q, start, end):
    ms = q["MetricStat"]
    m = ms.get("Metric") or {}
    period = int(ms.get("Period") or q.get("Period") or 60)
    if period <= 0:
        raise AwsError("InvalidParameterValue", "The Period must be positive.")
    key = (m.get("Namespace"), m.get("MetricName"), dims_key(m.get("Dimensions")))
    buckets = {}
    for pt in STATE.metrics.get(key, []):
        if start <= pt[0] < end:
            buckets.setdefault(int(pt[0] // period) * period, []).append(pt)
    series = {}
    for b, pts in buckets.items():
        v = cw_stat(pts, ms.get("Stat", "Average"))
        if v is not None:
            series[b] = v
    return series, m.get("MetricName")


TOKEN_RE = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")


def cw_expression(expr, env):
    """Evaluate + - * / and parentheses over query ids (series: {ts: value}) and numbers.
    This fake's own evaluator, not CloudWatch metric math."""
    toks = []
    for num, ident, op in TOKEN_RE.findall(expr):
        if num:
            toks.append(("num", float(num)))
        elif ident:
            toks.append(("id", ident))
        elif op.strip():
            if op not in "+-*/()":
                raise AwsError("ValidationError", "Character '%s' in an expression is not "
                               "supported by this fake (only + - * / and parentheses over "
                               "query ids and numbers)" % op)
            toks.append(("op", op))
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take():
        t = peek()
        pos[0] += 1
        return t

    def apply(a, b, op):
        def f(x, y):
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            return None if y == 0 else x / y
        if isinstance(a, dict) and isinstance(b, dict):
            r = {t: f(a[t], b[t]) for t in a if t in b}
        elif isinstance(a, dict):
            r = {t: f(v, b) for t, v in a.items()}
        elif isinstance(b, dict):
            r = {t: f(a, v) for t, v in b.items()}
        else:
            return f(a, b)
        return {t: v for t, v in r.items() if v is not None}

    def atom():
        kind, v = take()
        if kind == "num":
            return v
        if kind == "id":
            if peek() == ("op", "("):
                raise AwsError("ValidationError", "Function %s is not supported by this fake "
                               "(only + - * / over ids and numbers)" % v)
            if v not in env:
                raise AwsError("ValidationError", "Unknown query id '%s' in expression" % v)
            return env[v]
        if (kind, v) == ("op", "("):
            r = expr_()
            if take() != ("op", ")"):
                raise AwsError("ValidationError", "Missing ')' in expression")
            return r
        if (kind, v) == ("op", "-"):
            return apply(atom(), -1.0, "*")
        raise AwsError("ValidationError", "Syntax error in expression '%s'" % expr)

    def term():
        r = atom()
        while peek() in (("op", "*"), ("op", "/")):
            op = take()[1]
            r = apply(r, atom(), op)
        return r

    def expr_():
        r = term()
        while peek() in (("op", "+"), ("op", "-")):
            op = take()[1]
            r = apply(r, term(), op)
        return r

    r = expr_()
    if pos[0] != len(toks):
        raise AwsError("ValidationError", "Syntax error in expression '%s'" % expr)
    return r


def cw_GetMetricData(p):
    qs = p.get("MetricDataQueries") or []
    if not qs:
        raise AwsError("MissingParameter", "The parameter MetricDataQueries is required.")
    try:
        start, end = float(p["StartTime"]), float(p["EndTime"])
    except (KeyError, TypeError, ValueError):
        raise AwsError("MissingParameter", "The parameters StartTime and EndTime are required.")
    env, labels = {}, {}
    pending = list(qs)
    for q in qs:
        if "MetricStat" in q:
            env[q["Id"]], labels[q["Id"]] = cw_metric_series(q, start, end)
    for _ in range(len(qs)):
        for q in list(pending):
            if "MetricStat" in q:
                pending.remove(q)
            elif "Expression" in q:
                try:
                    env[q["Id"]] = cw_expression(q["Expression"], env)
                    labels[q["Id"]] = q["Id"]
                    pending.remove(q)
                except AwsError as e:
                    if "Unknown query id" not in e.message:
                        raise
    for q in pending:
        cw_expression(q["Expression"], env)   # raises the error
    desc = p.get("ScanBy", "TimestampDescending") != "TimestampAscending"
    results = []
    for q in qs:
        if q.get("ReturnData", True) is False:
            continue
        s = env[q["Id"]]
        if not isinstance(s, dict):
            s = {}
        ts = sorted(s, reverse=desc)
        results.append({"Id": q["Id"], "Label": q.get("Label", labels.get(q["Id"], q["Id"])),
                        "Timestamps": ts, "Values": [s[t] for t in ts]})
    budget = min(int(p.get("MaxDatapoints", 100800)), int(STATE.faults["cloudwatchPagePoints"]))
    offsets = [0] * len(results)
    if p.get("NextToken"):
        try:
            offsets = json.loads(base64.b64decode(p["NextToken"]).decode())
            if not isinstance(offsets, list) or len(offsets) != len(results):
                raise ValueError()
        except ValueError:
            raise AwsError("InvalidNextToken", "The service couldn't process the NextToken.")
    more = False
    for i, r in enumerate(results):
        total = len(r["Timestamps"])
        take = max(0, min(budget, total - offsets[i]))
        budget -= take
        r["Timestamps"] = r["Timestamps"][offsets[i]:offsets[i] + take]
        r["Values"] = r["Values"][offsets[i]:offsets[i] + take]
        offsets[i] += take
        r["StatusCode"] = "PartialData" if offsets[i] < total else "Complete"
        more = more or offsets[i] < total
    out = {"MetricDataResults": results, "Messages": []}
    if more:
        out["NextToken"] = base64.b64encode(json.dumps(offsets).encode()).decode()
    return out


CW_OPS = {"PutMetricData": cw_PutMetricData, "GetMetricData": cw_GetMetricData}


# ---- STS -----------------------------------------------------------------------------------

def sts_AssumeRoleWithWebIdentity(p):
    for k in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
        if not p.get(k):
            raise AwsError("ValidationError", "1 validation error detected: Value null at '%s' "
                           "failed to satisfy constraint: Member must not be null" %
                           (k[0].lower() + k[1:]))
    w = next((x for x in STATE.web_identity if x["roleArn"] == p["RoleArn"]), None)
    if w is None:
        raise AwsError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                       403)
    if w["token"] != p["WebIdentityToken"]:
        raise AwsError("InvalidIdentityToken", "Couldn't retrieve verification key from your "
                       "identity provider")
    dur = int(p.get("DurationSeconds") or w.get("durationSeconds", 3600))
    akid = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    token = base64.b64encode(secrets.token_bytes(96)).decode()
    exp = int(time.time()) + dur
    STATE.keys[akid] = {"secret": secret, "token": token, "expiresAt": exp, "calls": 0}
    role = p["RoleArn"].rsplit("/", 1)[-1]
    return {"SubjectFromWebIdentityToken": "system:serviceaccount:fake:kanaria",
            "Audience": "sts.amazonaws.com",
            "AssumedRoleUser": {"AssumedRoleId": "AROAFAKE%s:%s" % (digits(8), p["RoleSessionName"]),
                                "Arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (
                                    STATE.account, role, p["RoleSessionName"])},
            "Credentials": {"SessionToken": token, "SecretAccessKey": secret,
                            "Expiration": iso8601(exp), "AccessKeyId": akid},
            "Provider": "arn:aws:iam::%s:oidc-provider/fake" % STATE.account}


STS_OPS = {"AssumeRoleWithWebIdentity": sts_AssumeRoleWithWebIdentity}


# ---- the server ----------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kanaria-aws-fake"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing ----
    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, ctype, body, extra=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", self.request_id)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, obj):
        self._send(status, "application/json", json.dumps(obj, indent=1))

    def do_GET(self):
        self.request_id = str(uuid.uuid4())
        path, _, query = self.path.partition("?")
        with STATE.lock:
            if path == "/__log":
                since = int(dict(urllib.parse.parse_qsl(query)).get("since", 0))
                return self._json(200, {"calls": [c for c in STATE.log if c["seq"] > since]})
            if path == "/__state":
                return self._json(200, state_dump())
        self._json(404, {"error": "no such control endpoint %s" % path})

    def do_POST(self):
        self.request_id = str(uuid.uuid4())
        body = self._body()
        start = time.time()
        path = self.path.partition("?")[0]
        if path.startswith("/__"):
            return self.control(path, body)
        with STATE.lock:
            delay = call_delay(self.headers, body)
        if delay > 0:
            time.sleep(delay)
        with STATE.lock:
            self.aws(body, start)

    def control(self, path, body):
        try:
            cfg = json.loads(body or b"{}")
        except ValueError as e:
            return self._json(400, {"error": "bad JSON: %s" % e})
        with STATE.lock:
            try:
                if path == "/__reset":
                    STATE.reset()
                elif path == "/__setup":
                    STATE.setup(cfg)
                elif path == "/__faults":
                    set_faults(cfg)
                elif path == "/__tamper":
                    tamper(cfg)
                else:
                    return self._json(404, {"error": "no such control endpoint %s" % path})
            except (KeyError, ValueError, TypeError, AwsError) as e:
                return self._json(400, {"error": "%s: %s" % (path, e)})
            return self._json(200, state_dump() if path != "/__reset" else {})

    # ---- AWS ----
    def aws(self, body, start):
        auth = parse_authorization(self.headers.get("Authorization"))
        target = self.headers.get("X-Amz-Target", "")
        form = None
        if auth and auth["service"] in SERVICES:
            service = auth["service"]
        elif target.startswith(ECS_PREFIX + "."):
            service = "ecs"
        elif target.startswith(CW_PREFIX + "."):
            service = "monitoring"
        else:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                                keep_blank_values=True))
            service = "sts" if form.get("Action") == "AssumeRoleWithWebIdentity" else \
                "elasticloadbalancing"
        proto = SERVICES[service]
        entry = {"service": service, "op": None, "params": None, "status": None, "code": None,
                 "fault": None, "accessKeyId": auth["akid"] if auth else None,
                 "start": round(start, 6)}
        try:
            # the operation and its parameters
            if proto.startswith("json"):
                prefix = ECS_PREFIX if service == "ecs" else CW_PREFIX
                if not target.startswith(prefix + "."):
                    raise AwsError("UnknownOperationException", "Unknown operation %s" % target)
                entry["op"] = target[len(prefix) + 1:]
                try:
                    params = json.loads(body or b"{}")
                    if not isinstance(params, dict):
                        raise ValueError("not an object")
                except ValueError:
                    raise AwsError("SerializationException", "Start of structure or map found "
                                   "where not expected.")
            else:
                pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                               keep_blank_values=True)
                params = query_unflatten(pairs)
                entry["op"] = params.pop("Action", None)
                version = params.pop("Version", None)
                want = "2011-06-15" if service == "sts" else "2015-12-01"
                if not entry["op"]:
                    raise AwsError("MissingAction", "Missing Action")
                if version != want:
                    raise AwsError("InvalidAction", "Could not find operation %s for version %s"
                                   % (entry["op"], version))
            entry["params"] = params
            ops = {"ecs": ECS_OPS, "elasticloadbalancing": ELB_OPS, "monitoring": CW_OPS,
                   "sts": STS_OPS}[service]
            fn = ops.get(entry["op"])
            # authentication
            if not (service == "sts" and entry["op"] == "AssumeRoleWithWebIdentity"):
                self.authenticate(auth, service, body)
                if auth:
                    STATE.keys[auth["akid"]]["calls"] += 1
            if fn is None:
                if proto == "query":
                    raise AwsError("InvalidAction", "Could not find operation %s for version %s"
                                   % (entry["op"], "2015-12-01"))
                raise AwsError("UnknownOperationException", "Unknown operation %s" % target)
            # scripted faults
            fault = op_fault(service, entry["op"])
            if fault is not None:
                entry["fault"] = fault["kind"]
                if fault.get("html"):
                    entry["status"] = 500
                    STATE_log(entry)
                    return self._send(500, "text/html; charset=utf-8", MOTO_HTML_500)
                raise fault["error"]
            result = fn(params)
            entry["status"] = 200
            STATE_log(entry)
            return self.reply(proto, service, entry["op"], result)
        except AwsError as e:
            entry["status"] = e.status
            entry["code"] = e.code
            entry["message"] = e.message
            STATE_log(entry)
            return self.error(proto, service, e)

    def authenticate(self, auth, service, body):
        json_proto = SERVICES[service].startswith("json")

        def err(json_code, query_code, msg, status=403):
            return AwsError(json_code if json_proto else query_code, msg, status)

        if not STATE.verify:
            return
        if auth is None:
            raise err("MissingAuthenticationTokenException", "MissingAuthenticationToken",
                      "Missing Authentication Token")
        headers = list(self.headers.items())
        names = {n.lower() for n, _ in headers}
        amz_date = self.headers.get("X-Amz-Date")
        if not amz_date:
            raise err("IncompleteSignatureException", "IncompleteSignature",
                      "Authorization header requires existence of either a 'X-Amz-Date' or a "
                      "'Date' header.", 400)
        for h in auth["signed"]:
            if h not in names:
                raise err("IncompleteSignatureException", "IncompleteSignature",
                          "'%s' is named as a SignedHeader, but it does not exist in the HTTP "
                          "request." % h, 400)
        if "host" not in auth["signed"]:
            raise err("IncompleteSignatureException", "IncompleteSignature",
                      "'Host' must be a 'SignedHeader' in the AWS Authorization.", 400)
        key = STATE.keys.get(auth["akid"])
        token = self.headers.get("X-Amz-Security-Token")
        if key is None or (key["token"] or None) != (token or None):
            raise err("UnrecognizedClientException", "InvalidClientTokenId",
                      "The security token included in the request is invalid.")
        if key_expired(auth["akid"], key):
            raise err("ExpiredTokenException", "ExpiredToken",
                      "The security token included in the request is expired")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise err("IncompleteSignatureException", "IncompleteSignature",
                      "Date must be in ISO-8601 'basic format'. Got '%s'." % amz_date, 400)
        now = time.time() + float(STATE.faults.get("clockOffsetSeconds", 0))
        fmt = "%Y%m%dT%H%M%SZ"
        nowtxt = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime(fmt)
        if t < now - SKEW_SECONDS:
            lim = datetime.datetime.fromtimestamp(now - SKEW_SECONDS,
                                                  datetime.timezone.utc).strftime(fmt)
            raise err("InvalidSignatureException", "SignatureDoesNotMatch",
                      "Signature expired: %s is now earlier than %s (%s - 5 min.)" %
                      (amz_date, lim, nowtxt))
        if t > now + SKEW_SECONDS:
            lim = datetime.datetime.fromtimestamp(now + SKEW_SECONDS,
                                                  datetime.timezone.utc).strftime(fmt)
            raise err("InvalidSignatureException", "SignatureDoesNotMatch",
                      "Signature not yet current: %s is still later than %s (%s + 5 min.)" %
                      (amz_date, lim, nowtxt))
        if auth["region"] != STATE.region:
            raise err("InvalidSignatureException", "SignatureDoesNotMatch",
                      "Credential should be scoped to a valid region, not '%s'. " % auth["region"])
        if auth["date"] != amz_date[:8]:
            raise err("InvalidSignatureException", "SignatureDoesNotMatch",
                      "Credential should be scoped to a valid date, not '%s'." % auth["date"])
        path, _, query = self.path.partition("?")
        sig, _ = sigv4_signature(key["secret"], self.command, path, query, headers, auth["signed"],
                                 body, amz_date, auth["scope"])
        if not hmac.compare_digest(sig, auth["signature"]):
            raise err("InvalidSignatureException", "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. Consult the "
                      "service documentation for details.")

    def reply(self, proto, service, op, result):
        if proto == "json1.1":
            return self._send(200, "application/x-amz-json-1.1", json.dumps(result))
        if proto == "json1.0":
            return self._send(200, "application/x-amz-json-1.0", json.dumps(result))
        ns = STS_NS if service == "sts" else ELB_NS
        xml = ('<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>%s'
               '</RequestId></ResponseMetadata></%sResponse>' % (
                   op, ns, op, xml_of(result), op, self.request_id, op))
        return self._send(200, "text/xml", xml)

    def error(self, proto, service, e):
        if proto.startswith("json"):
            ctype = "application/x-amz-json-1.1" if proto == "json1.1" else \
                "application/x-amz-json-1.0"
            return self._send(e.status, ctype, json.dumps({"__type": e.code,
                                                           "message": e.message}))
        ns = STS_NS if service == "sts" else ELB_NS
        xml = ('<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s'
               '</Message></Error><RequestId>%s</RequestId></ErrorResponse>' % (
                   ns, "Sender" if e.sender else "Receiver", xml_escape(e.code),
                   xml_escape(e.message), self.request_id))
        return self._send(e.status, "text/xml", xml)


def key_expired(akid, key):
    ex = STATE.faults.get("expireKeysAfter")
    if ex and ex.get("accessKeyId", akid) == akid and (key["token"] or ex.get("accessKeyId")):
        if "calls" in ex and key["calls"] >= int(ex["calls"]):
            return True
        if "seconds" in ex and time.time() >= ex["_setAt"] + float(ex["seconds"]):
            return True
    exp = key.get("expiresAt")
    return exp is not None and time.time() >= float(exp)


def STATE_log(entry):
    STATE.seq += 1
    entry["seq"] = STATE.seq
    entry["time"] = now_epoch()
    entry["end"] = round(time.time(), 6)
    STATE.log.append(entry)


def call_delay(headers, body):
    """Seconds the scripted delays hold this request (0: none), from its target or Action."""
    if not STATE.faults["delays"]:
        return 0
    auth = parse_authorization(headers.get("Authorization"))
    target = headers.get("X-Amz-Target", "")
    if "." in target:
        op = target.rpartition(".")[2]
    else:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        op = form.get("Action")
    service = auth["service"] if auth else service_of_op(op or "")
    for d in STATE.faults["delays"]:
        if d.get("op", op) == op and d.get("service", service) == service:
            return float(d.get("ms", 0)) / 1000.0
    return 0


def op_fault(service, op):
    """The scripted fault for this call of op, or None; counts the call."""
    k = (service, op)
    STATE.op_calls[k] = n = STATE.op_calls.get(k, 0) + 1
    json_proto = SERVICES[service].startswith("json")
    for t in STATE.faults["throttle"]:
        if t["op"] == op and t.get("service", service) == service and \
                int(t.get("from", 1)) <= n <= int(t.get("to", t.get("from", 1))):
            code = t.get("code") or ("ThrottlingException" if service == "ecs" else "Throttling")
            return {"kind": "throttle", "error": AwsError(code, "Rate exceeded", 400)}
    for t in STATE.faults["errors"]:
        if t["op"] == op and t.get("service", service) == service and \
                int(t.get("from", 1)) <= n <= int(t.get("to", t.get("from", 1))):
            status = int(t.get("status", 500))
            if t.get("html"):
                return {"kind": "html500", "html": True}
            if service == "ecs" and status == 500:
                code = "ServerException"
            elif status == 503:
                code = "ServiceUnavailable" if not json_proto else "ServiceUnavailableException"
            else:
                code = "InternalFailure"
            code = t.get("code", code)
            return {"kind": "%d" % status,
                    "error": AwsError(code, t.get("message", "Service unavailable. Try again "
                                                 "later."), status, sender=False)}
    return None


def set_faults(cfg):
    f = STATE.faults
    for k, v in cfg.items():
        if k == "taskSets":
            for ref, knobs in v.items():
                hit = False
                for svc in STATE.services.values():
                    ts = find_ts(svc, ref)
                    if ts is not None:
                        ts["_knobs"].update(knobs)
                        hit = True
                if not hit:
                    raise ValueError("no task set %s" % ref)
        elif k == "delays":
            for d in v:
                if not isinstance(d, dict) or float(d.get("ms", -1)) < 0:
                    raise ValueError("a delay is {\"op\"?, \"service\"?, \"ms\" >= 0}, got %r"
                                     % (d,))
            f[k] = list(v)
        elif k in ("throttle", "errors"):
            f[k] = list(v)
            for t in v:
                STATE.op_calls.pop((t.get("service", service_of_op(t["op"])), t["op"]), None)
        elif k == "expireKeysAfter":
            f[k] = dict(v) if v else None
            if v:
                f[k]["_setAt"] = time.time()
                for key in STATE.keys.values():
                    key["calls"] = 0
        elif k in ("newTaskSets", "taskSetLimit", "clockOffsetSeconds", "cloudwatchPagePoints"):
            f[k] = v
        elif k == "verifySignatures":
            STATE.verify = bool(v)
        else:
            raise ValueError("unknown fault %r" % k)


def service_of_op(op):
    if op in ECS_OPS:
        return "ecs"
    if op in CW_OPS:
        return "monitoring"
    if op in STS_OPS:
        return "sts"
    return "elasticloadbalancing"


def tamper(cfg):
    for ls in cfg.get("listeners", []):
        if ls.get("delete"):
            STATE.listeners = [x for x in STATE.listeners if x["ListenerArn"] != ls["listenerArn"]]
            STATE.rules = [x for x in STATE.rules if x["ListenerArn"] != ls["listenerArn"]]
    for r in cfg.get("rules", []):
        if r.get("delete"):
            STATE.rules = [x for x in STATE.rules if x["RuleArn"] != r["ruleArn"]]
            continue
        acts = STATE.norm_actions(r["actions"])
        if "listenerArn" in r:
            ls = next(x for x in STATE.listeners if x["ListenerArn"] == r["listenerArn"])
            ls["DefaultActions"] = acts
        else:
            rule = next((x for x in STATE.rules if x["RuleArn"] == r["ruleArn"]), None)
            if rule is None:
                ls = next(x for x in STATE.listeners if default_rule_arn(x) == r["ruleArn"])
                ls["DefaultActions"] = acts
            else:
                rule["Actions"] = acts
    for t in cfg.get("taskSets", []):
        for svc in STATE.services.values():
            ts = find_ts(svc, t["taskSet"])
            if ts is not None and ts["status"] != "DRAINING":
                ts["runningCount"] = max(0, ts["runningCount"] - int(t.get("stopTasks", 1)))
                ts["_from"] = ts["runningCount"]
                ts["_progress"] = 0
                ts["stabilityStatus"] = "STABILIZING"
                svc_counts(svc)


def state_dump():
    services = []
    for (cluster, name), svc in STATE.services.items():
        v = svc_view(svc)
        v["cluster"] = cluster
        v["taskSets"] = [dict(ts_view(t), polls=t["_progress"], knobs=t["_knobs"],
                              tags=STATE.tags.get(t["taskSetArn"], []),
                              images=[c.get("image") for c in td_images(t["taskDefinition"])])
                         for t in svc["taskSets"]]
        services.append(v)
    return {"accountId": STATE.account, "region": STATE.region,
            "keys": [{"accessKeyId": k, "temporary": bool(v["token"]),
                      "expiresAt": v["expiresAt"], "calls": v["calls"]}
                     for k, v in STATE.keys.items()],
            "clusters": sorted(STATE.clusters),
            "taskDefinitions": {f: [{"taskDefinitionArn": t["taskDefinitionArn"],
                                     "status": t["status"]} for t in revs]
                                for f, revs in STATE.taskdefs.items()},
            "services": services,
            "loadBalancers": [{"LoadBalancerArn": x["LoadBalancerArn"],
                               "LoadBalancerName": x["LoadBalancerName"]} for x in STATE.lbs],
            "targetGroups": [{"TargetGroupArn": x["TargetGroupArn"],
                              "TargetGroupName": x["TargetGroupName"],
                              "LoadBalancerArns": x["LoadBalancerArns"]} for x in STATE.tgs],
            "listeners": [listener_view(x) for x in STATE.listeners],
            "rules": [dict(rule_view(r), ListenerArn=r["ListenerArn"]) for r in all_rules()],
            "metrics": len(STATE.metrics),
            "faults": {k: v for k, v in STATE.faults.items()}}


def main():
    ap = argparse.ArgumentParser(description="kanaria's scripted AWS fake (loopback only)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print("listening %d" % srv.server_address[1], flush=True)

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
