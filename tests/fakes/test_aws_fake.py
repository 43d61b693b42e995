#!/usr/bin/env python3
"""
Self-test of tests/fakes/aws_fake.py (ctest aws_fake_selftest): starts the fake with Debian's
/usr/bin/python3 when there is one (it must need nothing but the standard library), signs
requests with its own SigV4 code (checked first against the vector of kanaria's ecs notes,
section 2.3) and runs the scenarios the ECS provider's tests rely on. When botocore can be
imported, its clients and parsers also talk to the fake (its signatures must verify, its parsers
must read the replies); otherwise that part prints a SKIPPED line.
"""

import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "aws_fake.py")
REGION = "us-east-1"
ACCT = "123456789012"
AKID, SECRET = "AKIDFAKEKANARIA00001", "c2VjcmV0LWtleS1mb3ItdGhlLWZha2U="
TMP_AKID, TMP_SECRET, TMP_TOKEN = "ASIAFAKEKANARIA00002", "dGVtcG9yYXJ5LXNlY3JldA==", "tok/en+=1"
ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
CW_TARGET = "GraniteServiceVersion20100801."
TG_BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/1111111111111111"
TG_GREEN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/2222222222222222"
TG_OTHER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/other/3333333333333333"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"

FAILED = []


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        FAILED.append(what)


# ---- SigV4, written here independently of the fake's verifier --------------------------------

def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, host, headers, body, akid, secret, service, amz_date, token=None,
         region=REGION):
    """headers: dict of the headers to send (without host/x-amz-date); returns the full dict."""
    h = dict(headers)
    h["X-Amz-Date"] = amz_date
    if token:
        h["X-Amz-Security-Token"] = token
    allh = dict((k.lower(), " ".join(v.split())) for k, v in h.items())
    allh["host"] = host
    names = sorted(allh)
    canon = "%s\n/\n\n%s\n%s\n%s" % (method, "".join("%s:%s\n" % (n, allh[n]) for n in names),
                                      ";".join(names), hashlib.sha256(body).hexdigest())
    scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
    sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amz_date, scope,
                                            hashlib.sha256(canon.encode()).hexdigest())
    k = hm(("AWS4" + secret).encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        k = hm(k, part)
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        akid, scope, ";".join(names), sig)
    return h, sig


def vector():
    body = ("Action=DescribeRules&Version=2015-12-01&ListenerArn=arn%3Aaws%3Aelasticloadbalancing"
            "%3Aus-east-1%3A123456789012%3Alistener%2Fapp%2Flb%2F50dc6c495c0c9188%2Ff2f7dc8efc52"
            "2ab2").encode()
    ct = "application/x-www-form-urlencoded; charset=utf-8"
    want = "9af25ba3ec0e014100b44bdd3bdda8d618bba5d4513491e46251c424cd23dab2"
    h, sig = sign("POST", "127.0.0.1:18431", {"Content-Type": ct}, body, "AKIDEXAMPLE",
                  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "elasticloadbalancing",
                  "20261124T152926Z")
    check(sig == want, "test signer matches the ecs.md 2.3 vector")
    sys.dont_write_bytecode = True
    sys.path.insert(0, HERE)
    import aws_fake
    got, _ = aws_fake.sigv4_signature(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "POST", "/", "",
        [("Host", "127.0.0.1:18431"), ("Content-Type", ct), ("X-Amz-Date", "20261124T152926Z")],
        ["content-type", "host", "x-amz-date"], body, "20261124T152926Z",
        "20261124/us-east-1/elasticloadbalancing/aws4_request")
    check(got == want, "fake's verifier computes the ecs.md 2.3 vector")
    # and the verifier refuses a changed body
    got2, _ = aws_fake.sigv4_signature(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "POST", "/", "",
        [("Host", "127.0.0.1:18431"), ("Content-Type", ct), ("X-Amz-Date", "20261124T152926Z")],
        ["content-type", "host", "x-amz-date"], body + b"&x=1", "20261124T152926Z",
        "20261124/us-east-1/elasticloadbalancing/aws4_request")
    check(got2 != want, "a changed body gives another signature")


# ---- a client -----------------------------------------------------------------------------

class Fake:
    def __init__(self):
        py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        self.proc = subprocess.Popen([py, FAKE], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise SystemExit("fake did not start: %r" % line)
        self.port = int(line[1])
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://%s/" % self.host
        print("fake (%s) on port %d" % (py, self.port), flush=True)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self.proc.returncode

    def raw(self, path, body, headers, method="POST"):
        req = urllib.request.Request(self.url.rstrip("/") + path, data=body, headers=headers,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def control(self, path, obj=None):
        if obj is None and path in ("/__log", "/__state"):
            st, _, b = self.raw(path, None, {}, "GET")
        else:
            st, _, b = self.raw(path, json.dumps(obj or {}).encode(),
                                {"Content-Type": "application/json"})
        if st != 200:
            raise SystemExit("control %s: %d %s" % (path, st, b))
        return json.loads(b)

    def call(self, service, op, params, akid=AKID, secret=SECRET, token=None, skew=0,
             sign_secret=None, region=REGION):
        amz_date = (datetime.datetime.now(datetime.timezone.utc) +
                    datetime.timedelta(seconds=skew)).strftime("%Y%m%dT%H%M%SZ")
        if service in ("ecs", "monitoring"):
            body = json.dumps(params).encode()
            hdr = {"Content-Type": "application/x-amz-json-%s" % ("1.1" if service == "ecs" else
                                                                    "1.0"),
                   "X-Amz-Target": (ECS_TARGET if service == "ecs" else CW_TARGET) + op}
        else:
            body = ("Action=%s&Version=2015-12-01&" % op + urllib.parse.urlencode(
                params, quote_via=urllib.parse.quote, safe="")).encode()
            hdr = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        h, _ = sign("POST", self.host, hdr, body, akid, sign_secret or secret, service,
                    amz_date, token, region)
        st, rh, b = self.raw("/", body, h)
        if service in ("ecs", "monitoring"):
            try:
                return st, json.loads(b)
            except ValueError:
                return st, b
        return st, b.decode()

    def ecs(self, op, params, **kw):
        return self.call("ecs", op, params, **kw)

    def elb(self, op, params, **kw):
        return self.call("elasticloadbalancing", op, params, **kw)


def xml_field(xml, tag):
    import re
    return re.findall("<%s>([^<]*)</%s>" % (tag, tag), xml)


# ---- scenarios ----------------------------------------------------------------------------

def setup(f):
    f.control("/__reset")
    rules = [{"listener": 80, "arn": LB.replace(":loadbalancer/", ":listener-rule/") +
              "/f2f7dc8efc522ab2/r%d" % i, "priority": 10 * i,
              "conditions": [{"Field": "path-pattern", "Values": ["/p%d/*" % i]}],
              "actions": [{"Type": "forward", "ForwardConfig": {
                  "TargetGroups": [{"TargetGroupArn": TG_BLUE, "Weight": 100},
                                   {"TargetGroupArn": TG_GREEN, "Weight": 0}],
                  "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}}]}
             for i in range(1, 5)]
    rules.append({"listener": 80, "priority": 50, "actions": [
        {"Type": "forward", "TargetGroupArn": TG_OTHER}],
        "conditions": [{"Field": "host-header", "Values": ["other.example"]}]})
    f.control("/__setup", {
        "accountId": ACCT, "region": REGION,
        "users": [{"accessKeyId": AKID, "secretAccessKey": SECRET},
                  {"accessKeyId": TMP_AKID, "secretAccessKey": TMP_SECRET,
                   "sessionToken": TMP_TOKEN}],
        "clusters": ["c1"],
        "loadBalancers": [{"name": "web", "arn": LB}],
        "targetGroups": [{"name": "web-blue", "arn": TG_BLUE, "loadBalancers": ["web"]},
                         {"name": "web-green", "arn": TG_GREEN, "loadBalancers": ["web"]},
                         {"name": "other", "arn": TG_OTHER, "loadBalancers": ["web"]}],
        "listeners": [{"loadBalancer": "web", "port": 80, "arn": LB.replace(
            ":loadbalancer/", ":listener/") + "/f2f7dc8efc522ab2", "defaultActions": [
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": TG_BLUE, "Weight": 100},
                {"TargetGroupArn": TG_GREEN, "Weight": 0}]}}]},
            {"loadBalancer": "web", "port": 443, "protocol": "HTTPS", "defaultActions": [
                {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}]}],
        "rules": rules,
        "webIdentity": [{"roleArn": "arn:aws:iam::123456789012:role/kanaria", "token": "jwt.ok"}],
    })


def scenario_ecs(f):
    st, r = f.ecs("RegisterTaskDefinition", {"family": "web", "containerDefinitions": [
        {"name": "web", "image": "nginx:1"}]})
    check(st == 200 and r["taskDefinition"]["revision"] == 1, "RegisterTaskDefinition :1")
    st, r = f.ecs("RegisterTaskDefinition", {"family": "web", "containerDefinitions": [
        {"name": "web", "image": "nginx:2"}]})
    check(r["taskDefinition"]["taskDefinitionArn"].endswith(":task-definition/web:2"), "revision 2")
    svc_req = {"cluster": "c1", "serviceName": "web", "desiredCount": 3,
               "deploymentController": {"type": "EXTERNAL"}, "clientToken": "create-1"}
    st, r = f.ecs("CreateService", svc_req)
    check(st == 200 and r["service"]["deployments"] == [] and
          r["service"]["taskSets"] == [], "CreateService EXTERNAL")
    arn = r["service"]["serviceArn"]
    st, r = f.ecs("CreateService", svc_req)
    check(st == 200 and r["service"]["serviceArn"] == arn, "CreateService same clientToken")
    st, r = f.ecs("CreateService", dict(svc_req, clientToken="create-2"))
    check(st == 400 and r["__type"] == "InvalidParameterException", "CreateService other token")
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": ["web", "nosuch"]})
    check(st == 200 and len(r["services"]) == 1 and r["failures"][0]["reason"] == "MISSING" and
          r["failures"][0]["arn"].endswith(":service/c1/nosuch"), "DescribeServices MISSING")
    st, r = f.ecs("DescribeServices", {"cluster": "nope", "services": ["web"]})
    check(st == 400 and r["__type"] == "ClusterNotFoundException", "unknown cluster")

    # a task set: STABILIZING, ceil counts, converging after 3 polls
    f.control("/__faults", {"newTaskSets": {"pollsUntilSteady": 3}})
    ts_req = {"cluster": "c1", "service": "web", "taskDefinition": "web:1",
              "scale": {"value": 50, "unit": "PERCENT"}, "clientToken": "ts-1",
              "loadBalancers": [{"targetGroupArn": TG_BLUE, "containerName": "web",
                                 "containerPort": 80}], "tags": [{"key": "k", "value": "v"}]}
    st, r = f.ecs("CreateTaskSet", ts_req)
    ts = r.get("taskSet", {})
    check(st == 200 and ts["status"] == "ACTIVE" and ts["stabilityStatus"] == "STABILIZING" and
          ts["computedDesiredCount"] == 2 and ts["runningCount"] == 0,
          "CreateTaskSet: ACTIVE, STABILIZING, computedDesiredCount ceil(3*50%)=2")
    check(ts["id"].startswith("ecs-svc/") and len(ts["id"]) == 8 + 19, "task set id shape")
    st, r2 = f.ecs("CreateTaskSet", ts_req)
    check(st == 200 and r2["taskSet"]["id"] == ts["id"], "CreateTaskSet same clientToken: same set")
    seen = []
    for _ in range(3):
        st, r = f.ecs("DescribeTaskSets", {"cluster": "c1", "service": "web",
                                           "taskSets": [ts["taskSetArn"]], "include": ["TAGS"]})
        seen.append((r["taskSets"][0]["stabilityStatus"], r["taskSets"][0]["runningCount"]))
    check([s for s, _ in seen] == ["STABILIZING", "STABILIZING", "STEADY_STATE"] and
          seen[-1][1] == 2, "STEADY_STATE at the 3rd poll, runningCount 2: %s" % seen)
    check(r["taskSets"][0]["tags"] == [{"key": "k", "value": "v"}], "include TAGS")
    st, r = f.ecs("DescribeTaskSets", {"cluster": "c1", "service": "web",
                                       "taskSets": ["ecs-svc/0000000000000000000"]})
    check(st == 200 and r["taskSets"] == [] and r["failures"][0]["reason"] == "MISSING",
          "DescribeTaskSets unknown: failures MISSING")
    st, r = f.ecs("UpdateServicePrimaryTaskSet", {"cluster": "c1", "service": "web",
                                                  "primaryTaskSet": ts["taskSetArn"]})
    check(st == 200 and r["taskSet"]["status"] == "PRIMARY", "UpdateServicePrimaryTaskSet")
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": [arn]})
    s = r["services"][0]
    check(s["taskDefinition"].endswith("web:1") and s["loadBalancers"][0]["targetGroupArn"] ==
          TG_BLUE, "service inherits the primary's taskDefinition and loadBalancers")

    # EXTERNAL UpdateService: only some members; desiredCount re-stabilises the sets
    st, r = f.ecs("UpdateService", {"cluster": "c1", "service": "web", "taskDefinition": "web:2"})
    check(st == 400 and r["__type"] == "InvalidParameterException" and "taskDefinition" in
          r["message"], "UpdateService taskDefinition refused under EXTERNAL")
    st, r = f.ecs("UpdateService", {"cluster": "c1", "service": "web", "desiredCount": 5})
    st, r = f.ecs("UpdateTaskSet", {"cluster": "c1", "service": "web", "taskSet": ts["id"],
                                    "scale": {"value": 33, "unit": "PERCENT"}})
    check(st == 200 and r["taskSet"]["computedDesiredCount"] == 2 and
          r["taskSet"]["stabilityStatus"] == "STABILIZING", "UpdateTaskSet 33% of 5 -> 2")

    # runningCap: counts that never converge; neverSteady
    f.control("/__faults", {"newTaskSets": [
        {"match": {"externalId": "capped"}, "runningCap": 1, "pollsUntilSteady": 1},
        {"match": {"image": "nginx:2"}, "neverSteady": True, "pollsUntilSteady": 1},
        {"pollsUntilSteady": 1, "drainPolls": 2}]})
    st, r = f.ecs("CreateTaskSet", dict(ts_req, clientToken="ts-cap", externalId="capped",
                                        scale={"value": 100, "unit": "PERCENT"}))
    cap = r["taskSet"]
    st, r = f.ecs("CreateTaskSet", dict(ts_req, clientToken="ts-never", taskDefinition="web:2",
                                        scale={"value": 20, "unit": "PERCENT"}))
    never = r["taskSet"]
    for _ in range(4):
        st, r = f.ecs("DescribeTaskSets", {"cluster": "c1", "service": "web",
                                           "taskSets": [cap["id"], never["id"]]})
    c, n = r["taskSets"]
    check(c["runningCount"] == 1 and c["computedDesiredCount"] == 5 and
          c["stabilityStatus"] == "STABILIZING", "runningCap 1: counts never converge")
    check(n["runningCount"] == 1 and n["computedDesiredCount"] == 1 and
          n["stabilityStatus"] == "STABILIZING", "neverSteady (matched by image): counts converge, never steady")

    # DRAINING lingers and counts toward the limit of 5
    st, r = f.ecs("CreateTaskSet", dict(ts_req, clientToken="ts-4"))
    st, r = f.ecs("CreateTaskSet", dict(ts_req, clientToken="ts-5"))
    five = r["taskSet"]
    check(st == 200, "5th task set accepted")
    st, r = f.ecs("DeleteTaskSet", {"cluster": "c1", "service": "web", "taskSet": never["id"]})
    check(st == 200 and r["taskSet"]["status"] == "DRAINING", "DeleteTaskSet -> DRAINING")
    st, r = f.ecs("CreateTaskSet", dict(ts_req, clientToken="ts-6"))
    check(st == 400 and r["__type"] == "InvalidParameterException" and r["message"] ==
          "5 deployments exist on the service. Unable to create new TaskSet since this exceeds "
          "the maximum limit.", "limit of 5 counts the DRAINING set: %s" % r)
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": ["web"]})
    check([t["status"] for t in r["services"][0]["taskSets"]].count("DRAINING") == 1,
          "DRAINING set still embedded in DescribeServices (poll 1)")
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": ["web"]})
    check([t["status"] for t in r["services"][0]["taskSets"]].count("DRAINING") == 1,
          "DRAINING set still embedded (poll 2)")
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": ["web"]})
    check(len(r["services"][0]["taskSets"]) == 4, "drained set gone after drainPolls")
    st, r = f.ecs("DescribeTaskSets", {"cluster": "c1", "service": "web",
                                       "taskSets": [never["taskSetArn"]]})
    check(r["failures"] and r["failures"][0]["arn"] == never["taskSetArn"],
          "drained set is MISSING")
    st, r = f.ecs("CreateTaskSet", dict(ts_req, clientToken="ts-6"))
    check(st == 200, "a task set can be created again once the drained one is gone")
    st, r = f.ecs("UpdateTaskSet", {"cluster": "c1", "service": "web", "taskSet": "ecs-svc/1",
                                    "scale": {"value": 1, "unit": "PERCENT"}})
    check(st == 400 and r["__type"] == "TaskSetNotFoundException", "TaskSetNotFoundException")
    # tags
    st, _ = f.ecs("TagResource", {"resourceArn": arn, "tags": [{"key": "a", "value": "1"}]})
    st, _ = f.ecs("UntagResource", {"resourceArn": arn, "tagKeys": ["zz"]})
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn})
    check(r == {"tags": [{"key": "a", "value": "1"}]}, "Tag/Untag/ListTags")
    st, r = f.ecs("DeregisterTaskDefinition", {"taskDefinition": "web:1"})
    check(r["taskDefinition"]["status"] == "INACTIVE", "DeregisterTaskDefinition")
    state = f.control("/__state")
    check(len(state["services"][0]["taskSets"]) == 5 and
          state["services"][0]["taskSets"][0]["polls"] >= 3, "/__state shows task sets and polls")
    return five


def scenario_elb(f):
    larn = LB.replace(":loadbalancer/", ":listener/") + "/f2f7dc8efc522ab2"
    st, x = f.elb("DescribeListeners", {"LoadBalancerArn": LB, "PageSize": "1"})
    marker = xml_field(x, "NextMarker")
    check(st == 200 and len(xml_field(x, "ListenerArn")) == 1 and marker,
          "DescribeListeners PageSize 1 gives a NextMarker")
    st, x = f.elb("DescribeListeners", {"LoadBalancerArn": LB, "PageSize": "1",
                                        "Marker": marker[0]})
    check(st == 200 and len(xml_field(x, "ListenerArn")) == 1 and not xml_field(x, "NextMarker"),
          "DescribeListeners second page, no NextMarker")
    arns, marker, pages = [], None, 0
    while True:
        p = {"ListenerArn": larn, "PageSize": "2"}
        if marker:
            p["Marker"] = marker
        st, x = f.elb("DescribeRules", p)
        pages += 1
        arns += xml_field(x, "RuleArn")
        m = xml_field(x, "NextMarker")
        if not m or pages > 10:
            break
        marker = m[0]
    check(pages == 3 and len(arns) == 6 and "<Priority>default</Priority>" in x,
          "DescribeRules paginated: 3 pages, 6 rules, default last")
    st, x = f.elb("DescribeRules", {"ListenerArn": larn, "Marker": "bogus"})
    check(st == 400 and "<Code>ValidationError</Code>" in x, "bad marker refused")
    rule1 = arns[0]
    st, x = f.elb("DescribeRules", {"RuleArns.member.1": rule1})
    check("<PathPatternConfig><Values><member>/p1/*</member></Values></PathPatternConfig>" in x and
          "<Values><member>/p1/*</member></Values>" in x, "path condition returned both ways")
    check(x.index("<IsDefault>") < x.index("<Conditions>") < x.index("<Priority>") <
          x.index("<Actions>") < x.index("<RuleArn>"), "AWS's element order style")
    fwd = {"Actions.member.1.Type": "forward", "Actions.member.1.Order": "1",
           "Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn": TG_BLUE,
           "Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight": "80",
           "Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn": TG_GREEN,
           "Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight": "20"}
    st, x = f.elb("ModifyRule", dict(fwd, RuleArn=rule1))
    check(st == 200 and xml_field(x, "Weight") == ["80", "20"] and
          "<TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig>"
          in x, "ModifyRule 80/20; stickiness not sent reads back disabled")
    bad = dict(fwd, RuleArn=arns[1])
    bad["Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight"] = "1000"
    st, x = f.elb("ModifyRule", bad)
    check(st == 400 and "<Code>ValidationError</Code>" in x and "<Type>Sender</Type>" in x,
          "weight 1000 refused")
    both = dict(fwd, RuleArn=arns[1])
    both.update({"Conditions.member.1.Field": "path-pattern",
                 "Conditions.member.1.Values.member.1": "/p2/*",
                 "Conditions.member.1.PathPatternConfig.Values.member.1": "/p2/*"})
    st, x = f.elb("ModifyRule", both)
    check(st == 400 and "<Code>ValidationError</Code>" in x,
          "Values and PathPatternConfig in one condition refused")
    st, x = f.elb("DescribeRules", {"RuleArns.member.1": arns[1]})
    check(xml_field(x, "Weight") == ["100", "0"] and "<DurationSeconds>300</DurationSeconds>" in x,
          "refused ModifyRule changed nothing (weights, stickiness)")
    st, x = f.elb("ModifyListener", {
        "ListenerArn": larn, "DefaultActions.member.1.Type": "forward",
        "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn": TG_BLUE,
        "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight": "90",
        "DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn": TG_GREEN,
        "DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.Weight": "10"})
    check(st == 200 and xml_field(x, "Weight") == ["90", "10"], "ModifyListener default 90/10")
    st, x = f.elb("ModifyRule", dict(fwd, RuleArn=arns[-1]))
    check(st == 400 and "<Code>OperationNotPermitted</Code>" in x, "default rule via ModifyRule")
    st, x = f.elb("ModifyRule", dict(fwd, RuleArn=rule1 + "x"))
    check(st == 400 and "<Code>RuleNotFound</Code>" in x, "RuleNotFound")
    hdr = {"ListenerArn": larn, "Priority": "9",
           "Conditions.member.1.Field": "http-header",
           "Conditions.member.1.HttpHeaderConfig.HttpHeaderName": "X-Canary",
           "Conditions.member.1.HttpHeaderConfig.Values.member.1": "always",
           "Actions.member.1.Type": "forward", "Actions.member.1.Order": "1",
           "Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn": TG_GREEN,
           "Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight": "1",
           "Tags.member.1.Key": "kanaria.dev/app", "Tags.member.1.Value": "web"}
    st, x = f.elb("CreateRule", hdr)
    check(st == 200 and "<HttpHeaderConfig><HttpHeaderName>X-Canary</HttpHeaderName><Values>"
          "<member>always</member></Values></HttpHeaderConfig>" in x and
          xml_field(x, "Priority") == ["9"], "CreateRule with an http-header condition")
    hrule = xml_field(x, "RuleArn")[0] if st == 200 else ""
    st, x = f.elb("CreateRule", hdr)
    check(st == 400 and "<Code>PriorityInUse</Code>" in x, "CreateRule on a used priority")
    st, x = f.elb("CreateRule", dict(hdr, Priority="8", ListenerArn=larn + "x"))
    check(st == 400 and "<Code>ListenerNotFound</Code>" in x, "CreateRule ListenerNotFound")
    st, x = f.elb("DeleteRule", {"RuleArn": hrule})
    check(st == 200, "DeleteRule")
    st, x = f.elb("DeleteRule", {"RuleArn": hrule})
    check(st == 400 and "<Code>RuleNotFound</Code>" in x, "DeleteRule of a rule gone")
    st, x = f.elb("DeleteRule", {"RuleArn": arns[-1]})
    check(st == 400 and "<Code>OperationNotPermitted</Code>" in x, "DeleteRule of a default rule")
    st, x = f.elb("DescribeTargetGroups", {"TargetGroupArns.member.1": TG_BLUE})
    check(xml_field(x, "member").count(LB) == 1 and "<LoadBalancerArns><member>" in x,
          "DescribeTargetGroups LoadBalancerArns")
    st, x = f.elb("DescribeLoadBalancers", {"LoadBalancerArns.member.1": LB})
    check(st == 200 and xml_field(x, "LoadBalancerName") == ["web"], "DescribeLoadBalancers")
    log = f.control("/__log")["calls"]
    writes = [c for c in log if c["op"] in ("ModifyRule", "ModifyListener") and c["status"] == 200]
    check([c["params"].get("RuleArn", c["params"].get("ListenerArn")) for c in writes] ==
          [rule1, larn], "/__log lists exactly the accepted writes")
    check(writes[0]["params"]["Actions"][0]["ForwardConfig"]["TargetGroups"][1]["Weight"] == "20",
          "/__log has the parsed parameters")
    st = f.control("/__state")
    r4 = [r for r in st["rules"] if r["RuleArn"] == arns[3]][0]
    check(r4["Actions"][0]["ForwardConfig"]["TargetGroups"][0]["Weight"] == 100,
          "/__state rules with actions")


def scenario_faults(f):
    f.control("/__faults", {"throttle": [{"op": "DescribeTaskSets", "from": 1, "to": 2},
                                         {"op": "DescribeRules", "from": 1}],
                            "errors": [{"op": "ListTagsForResource", "from": 1, "status": 500},
                                       {"op": "ListTagsForResource", "from": 2, "html": True}]})
    got = [f.ecs("DescribeTaskSets", {"cluster": "c1", "service": "web"}) for _ in range(3)]
    check([g[0] for g in got] == [400, 400, 200] and got[0][1] ==
          {"__type": "ThrottlingException", "message": "Rate exceeded"},
          "ECS throttled on calls 1-2, 3rd passes")
    st, x = f.elb("DescribeRules", {"RuleArns.member.1": "x"})
    check(st == 400 and "<Code>Throttling</Code>" in x and "Rate exceeded" in x,
          "ELBv2 Throttling XML")
    arn = "arn:aws:ecs:us-east-1:123456789012:service/c1/web"
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn})
    check(st == 500 and r["__type"] == "ServerException", "5xx ServerException")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn})
    check(st == 500 and isinstance(r, bytes) and b"<title>500 Internal Server Error" in r,
          "HTML 500 like moto's")
    log = f.control("/__log")["calls"]
    check([c["fault"] for c in log[-3:]] == ["throttle", "500", "html500"], "faults in /__log")
    f.control("/__faults", {"throttle": [], "errors": []})

    # a delay holds the call outside the lock: two calls sent together overlap in /__log
    f.control("/__faults", {"delays": [{"op": "DescribeLoadBalancers", "ms": 300}]})
    import threading
    both = [threading.Thread(target=f.elb, args=("DescribeLoadBalancers", {}))
            for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join()
    a, b = f.control("/__log")["calls"][-2:]
    check(a["end"] - a["start"] >= 0.3 and b["end"] - b["start"] >= 0.3,
          "a delay of 300 ms shows in start/end")
    check(b["start"] < a["end"] and a["start"] < b["end"], "delayed calls sent together overlap")
    st, _, _ = f.raw("/__faults", json.dumps({"delays": [{"ms": -1}]}).encode(), {})
    check(st == 400, "a negative delay is refused")
    f.control("/__faults", {"delays": []})

    # signatures
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, sign_secret="wrong")
    check(st == 403 and r["__type"] == "InvalidSignatureException", "ECS bad signature")
    st, x = f.elb("DescribeLoadBalancers", {}, sign_secret="wrong")
    check(st == 403 and "<Code>SignatureDoesNotMatch</Code>" in x, "ELBv2 bad signature")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, akid="AKIDUNKNOWN")
    check(st == 403 and r["__type"] == "UnrecognizedClientException", "ECS unknown key")
    st, x = f.elb("DescribeLoadBalancers", {}, akid="AKIDUNKNOWN")
    check(st == 403 and "<Code>InvalidClientTokenId</Code>" in x, "ELBv2 unknown key")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, skew=-600)
    check(st == 403 and r["__type"] == "InvalidSignatureException" and
          r["message"].startswith("Signature expired: ") and "- 5 min.)" in r["message"],
          "clock skew 10 min: %s" % r)
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, skew=-200)
    check(st == 200, "clock skew 200 s accepted")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, region="eu-west-1")
    check(st == 403 and "scoped to a valid region" in r["message"], "scope for another region")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, akid=TMP_AKID, secret=TMP_SECRET)
    check(st == 403 and r["__type"] == "UnrecognizedClientException",
          "temporary key without its session token")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, akid=TMP_AKID, secret=TMP_SECRET,
                  token=TMP_TOKEN)
    check(st == 200, "temporary key with its session token")
    f.control("/__faults", {"expireKeysAfter": {"calls": 1}})
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, akid=TMP_AKID, secret=TMP_SECRET,
                  token=TMP_TOKEN)
    check(st == 200, "1st call before expireKeysAfter")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, akid=TMP_AKID, secret=TMP_SECRET,
                  token=TMP_TOKEN)
    check(st == 403 and r["__type"] == "ExpiredTokenException", "ECS ExpiredTokenException")
    st, x = f.elb("DescribeLoadBalancers", {}, akid=TMP_AKID, secret=TMP_SECRET, token=TMP_TOKEN)
    check(st == 403 and "<Code>ExpiredToken</Code>" in x, "ELBv2 ExpiredToken")
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn})
    check(st == 200, "permanent keys do not expire")
    f.control("/__faults", {"expireKeysAfter": None})
    f.control("/__faults", {"clockOffsetSeconds": 900})
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn})
    check(st == 403 and "Signature expired" in r["message"], "clockOffsetSeconds makes skew")
    f.control("/__faults", {"clockOffsetSeconds": 0})

    # STS web identity, unsigned
    body = urllib.parse.urlencode({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                                   "RoleArn": "arn:aws:iam::123456789012:role/kanaria",
                                   "RoleSessionName": "kanaria", "WebIdentityToken": "jwt.ok"})
    st, _, b = f.raw("/", body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    x = b.decode()
    exp = xml_field(x, "Expiration")
    check(st == 200 and exp and exp[0].endswith("Z") and
          "<AssumeRoleWithWebIdentityResult>" in x, "STS AssumeRoleWithWebIdentity")
    akid, sec, tok = (xml_field(x, n)[0] for n in ("AccessKeyId", "SecretAccessKey",
                                                   "SessionToken"))
    st, r = f.ecs("ListTagsForResource", {"resourceArn": arn}, akid=akid, secret=sec, token=tok)
    check(st == 200, "STS credentials work")
    st, _, b = f.raw("/", body.replace("jwt.ok", "jwt.bad").encode(),
                     {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 400 and b"<Code>InvalidIdentityToken</Code>" in b, "STS bad token")


def scenario_cloudwatch(f):
    dims = [{"Name": "TargetGroup", "Value": "targetgroup/web-green/2222222222222222"},
            {"Name": "LoadBalancer", "Value": "app/web/50dc6c495c0c9188"}]
    t0 = 1_800_000_000 - 1_800_000_000 % 60
    data = []
    for i in range(3):
        data.append({"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": t0 + 60 * i + 5,
                     "Value": 100.0})
        data.append({"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": t0 + 60 * i + 9,
                     "Value": 100.0})
        data.append({"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims,
                     "Timestamp": t0 + 60 * i + 7, "Value": float(i)})
    st, r = f.call("monitoring", "PutMetricData", {"Namespace": "AWS/ApplicationELB",
                                                   "MetricData": data})
    check(st == 200, "PutMetricData")

    def q(qid, name, stat, d=dims):
        return {"Id": qid, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                                                     "MetricName": name, "Dimensions": d},
                                          "Period": 60, "Stat": stat}, "ReturnData": True}
    req = {"StartTime": t0, "EndTime": t0 + 180, "MetricDataQueries": [
        q("req", "RequestCount", "Sum"), q("err", "HTTPCode_Target_5XX_Count", "Sum"),
        q("avg", "RequestCount", "Average"), q("n", "RequestCount", "SampleCount"),
        q("other", "RequestCount", "Sum", dims[:1]),
        {"Id": "rate", "Expression": "100 * err / req", "Label": "5xx %"},
        {"Id": "neg", "Expression": "-(err - 1) + 2 * (3 - 1)"}]}
    st, r = f.call("monitoring", "GetMetricData", req)
    res = {x["Id"]: x for x in r.get("MetricDataResults", [])}
    check(st == 200 and res["req"]["Values"] == [200.0, 200.0, 200.0] and
          res["req"]["Timestamps"] == [t0 + 120, t0 + 60, t0], "Sum per period, newest first")
    check(res["err"]["Values"] == [2.0, 1.0, 0.0], "err Sum")
    check(res["avg"]["Values"] == [100.0] * 3 and res["n"]["Values"] == [2.0] * 3,
          "Average, SampleCount")
    check(res["other"]["Values"] == [], "a different dimension set matches nothing")
    check(res["rate"]["Values"] == [1.0, 0.5, 0.0] and res["rate"]["Label"] == "5xx %",
          "expression 100 * err / req")
    check(res["neg"]["Values"] == [3.0, 4.0, 5.0], "expression with unary minus, parentheses")
    f.control("/__faults", {"cloudwatchPagePoints": 4})
    pages, token, got = 0, None, []
    while True:
        rq = dict(req, MetricDataQueries=req["MetricDataQueries"][:2])
        if token:
            rq["NextToken"] = token
        st, r = f.call("monitoring", "GetMetricData", rq)
        pages += 1
        got += [(x["Id"], v) for x in r["MetricDataResults"] for v in x["Values"]]
        token = r.get("NextToken")
        if not token or pages > 5:
            break
    check(pages == 2 and len(got) == 6, "NextToken paging with 4 points a page")
    st, r = f.call("monitoring", "GetMetricData", dict(req, MetricDataQueries=[
        q("req", "RequestCount", "Sum"), {"Id": "x", "Expression": "IF(req > 0, 1, 0)"}]))
    check(st == 400 and "not supported by this fake" in r["message"], "unsupported function named")


def scenario_botocore(f):
    try:
        import botocore.config
        import botocore.session
    except ImportError:
        print("SKIPPED: botocore cross-check: botocore is not importable by %s" % sys.executable)
        return
    sess = botocore.session.get_session()
    cfg = botocore.config.Config(retries={"mode": "standard", "max_attempts": 1})
    kw = dict(region_name=REGION, endpoint_url=f.url.rstrip("/"), aws_access_key_id=AKID,
              aws_secret_access_key=SECRET, config=cfg)
    ecs = sess.create_client("ecs", **kw)
    elb = sess.create_client("elbv2", **kw)
    r = ecs.describe_task_sets(cluster="c1", service="web", include=["TAGS"])
    check(len(r["taskSets"]) >= 1 and isinstance(r["taskSets"][0]["createdAt"],
                                                 datetime.datetime),
          "botocore signs, the fake verifies; DescribeTaskSets parses (createdAt a datetime)")
    r = elb.describe_rules(ListenerArn=LB.replace(":loadbalancer/", ":listener/") +
                           "/f2f7dc8efc522ab2", PageSize=2)
    check(len(r["Rules"]) == 2 and "NextMarker" in r and
          r["Rules"][0]["Actions"][0]["ForwardConfig"]["TargetGroups"][1]["Weight"] == 0 and
          r["Rules"][0]["Actions"][0]["ForwardConfig"]["TargetGroupStickinessConfig"] ==
          {"Enabled": True, "DurationSeconds": 300},
          "botocore parses DescribeRules (Weight an int)")
    rule = r["Rules"][1]
    elb.modify_rule(RuleArn=rule["RuleArn"], Actions=[{
        "Type": "forward", "Order": 1, "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": TG_BLUE, "Weight": 70},
                             {"TargetGroupArn": TG_GREEN, "Weight": 30}],
            "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 60}}}])
    r = elb.describe_rules(RuleArns=[rule["RuleArn"]])
    fc = r["Rules"][0]["Actions"][0]["ForwardConfig"]
    check([g["Weight"] for g in fc["TargetGroups"]] == [70, 30] and
          fc["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": 60},
          "botocore ModifyRule serialisation understood by the fake")
    for client, call, code in ((ecs, lambda: ecs.describe_task_sets(
            cluster="c1", service="nosuch"), "ServiceNotFoundException"),
            (elb, lambda: elb.describe_rules(ListenerArn=LB + "x"), "ListenerNotFound")):
        try:
            call()
            check(False, "botocore error %s" % code)
        except client.exceptions.ClientError as e:
            check(e.response["Error"]["Code"] == code, "botocore parses the error %s" % code)
    bad = sess.create_client("ecs", **dict(kw, aws_secret_access_key="wrong"))
    try:
        bad.list_tags_for_resource(resourceArn="x")
        check(False, "botocore bad signature refused")
    except bad.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] == "InvalidSignatureException",
              "botocore reads InvalidSignatureException")
    # CloudWatch: botocore may pick another protocol for its client; parse our JSON 1.0 reply
    import botocore.parsers
    model = sess.get_service_model("cloudwatch")
    st, r = f.call("monitoring", "GetMetricData", {"StartTime": 0, "EndTime": 2e9,
                                                    "MetricDataQueries": [{"Id": "e",
                                                                           "Expression": "1+1"}]})
    parsed = botocore.parsers.create_parser("json").parse(
        {"status_code": st, "headers": {}, "body": json.dumps(r).encode()},
        model.operation_model("GetMetricData").output_shape)
    check("MetricDataResults" in parsed, "botocore's JSON parser reads GetMetricData")


def scenario_delete_service(f):
    st, r = f.ecs("DeleteService", {"cluster": "c1", "service": "web"})
    check(st == 400 and r["__type"] == "InvalidParameterException",
          "DeleteService of a scaled service without force refused")
    st, r = f.ecs("DeleteService", {"cluster": "c1", "service": "web", "force": True})
    check(st == 200 and r["service"]["status"] == "DRAINING" and
          all(t["status"] == "DRAINING" for t in r["service"]["taskSets"]),
          "DeleteService force: DRAINING, its task sets too")
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": ["web"]})
    st, r = f.ecs("DescribeServices", {"cluster": "c1", "services": ["web"]})
    check(r["services"][0]["status"] == "INACTIVE", "then INACTIVE")
    st, r = f.ecs("DescribeTaskSets", {"cluster": "c1", "service": "web"})
    check(st == 400 and r["__type"] == "ServiceNotActiveException", "ServiceNotActiveException")
    st, r = f.ecs("CreateService", {"cluster": "c1", "serviceName": "web", "desiredCount": 1,
                                    "deploymentController": {"type": "EXTERNAL"}})
    check(st == 200 and r["service"]["status"] == "ACTIVE", "the name can be used again")


def main():
    vector()
    f = Fake()
    try:
        setup(f)
        scenario_ecs(f)
        setup(f)
        scenario_elb(f)
        setup(f)
        scenario_ecs(f)
        scenario_faults(f)
        scenario_cloudwatch(f)
        setup(f)
        scenario_ecs(f)
        scenario_botocore(f)
        scenario_delete_service(f)
    finally:
        rc = f.stop()
    check(rc == 0, "fake exits 0 on SIGTERM (got %s)" % rc)
    if FAILED:
        print("%d check(s) failed: %s" % (len(FAILED), "; ".join(FAILED)))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
