#!/usr/bin/env python3
"""The AWS world of kanaria's moto tests and demo, on a running moto_server.

Run it with the Python that has moto and boto3 (the interpreter moto_server's script names).
moto_server must have been started with INITIAL_NO_AUTH_ACTION_COUNT=6 (NO_AUTH_ACTIONS below):
`setup` spends those six unchecked requests on two IAM users with their keys and policies, and
from then on moto checks every request's SigV4 signature against its IAM store and evaluates
the caller's policy, as AWS does.

    moto_env.py --endpoint URL setup > env.json     the world; its ARNs and keys as JSON
    moto_env.py --endpoint URL --env env.json weights [--summary]
    moto_env.py ... get KEY                          a value of env.json (kanaria.accessKeyId)
    moto_env.py ... set-weight RULE PRIMARY CANARY  a weight edited behind kanaria's back
    moto_env.py ... feed --canary-5xx R [--seconds S]
                                                    the ALB's CloudWatch counts, every second
    moto_env.py ... ecs [--summary] CLUSTER SERVICE the service and its task sets
    moto_env.py ... calls FILE                      kanaria's calls in moto's recording, in order

What moto 5.2.1 implements, and so what the tests may assert, with the source of each field
(the README section "The ECS platform" says the same):
  - ELBv2 listeners and rules store ForwardConfig.TargetGroups[{TargetGroupArn, Weight}] and
    TargetGroupStickinessConfig verbatim and return them from DescribeListeners/DescribeRules
    (moto/elbv2/models.py FakeListener/FakeListenerRule): weights and stickiness are asserted.
  - ECS task sets: taskSetArn, status (PRIMARY/ACTIVE), taskDefinition, scale, loadBalancers
    (moto/ecs/models.py TaskSet): asserted. No runningCount/computedDesiredCount, stability is
    STEADY_STATE at birth, no DRAINING: none of that is asserted here.
  - ECS services: status, deploymentController, taskDefinition of the primary set (DescribeServices).
  - CloudWatch: PutMetricData and GetMetricData MetricStat Sum over exact dimensions; no metric
    math (an expression answers no values), no percentiles.
  - moto's CreateTaskSet answers an HTML 500 with awsvpc networking unless securityGroups are
    given and the VPC has DNS hostnames enabled, so this world has both.
"""
import argparse
import base64
import json
import sys
import time
import urllib.parse

REGION = "us-east-1"
# The unchecked requests setup spends: CreateUser, CreateAccessKey, PutUserPolicy, twice.
NO_AUTH_ACTIONS = 6

# The smallest IAM policy kanaria needs for an ECS platform with CloudWatch analysis. The README
# (section "The ECS platform") lists the same actions; keep both in step.
KANARIA_ACTIONS = [
    "ecs:RegisterTaskDefinition",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:DescribeServices",
    "ecs:CreateService",
    "ecs:UpdateService",
    "ecs:DeleteService",
    "ecs:CreateTaskSet",
    "ecs:UpdateTaskSet",
    "ecs:DescribeTaskSets",
    "ecs:DeleteTaskSet",
    "ecs:UpdateServicePrimaryTaskSet",
    "ecs:TagResource",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:AddTags",
    "cloudwatch:GetMetricData",
    # moto names an action after the request's signing name, which is "monitoring" for
    # CloudWatch; AWS's IAM calls it cloudwatch:GetMetricData. Only this test world needs it.
    "monitoring:GetMetricData",
]


def client(env_or_endpoint, service, keys=None):
    import boto3  # here, not above: `get` and `calls` answer without loading it
    import botocore.config

    if isinstance(env_or_endpoint, dict):
        endpoint = env_or_endpoint["endpoint"]
        keys = keys or env_or_endpoint["admin"]
    else:
        endpoint = env_or_endpoint
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=keys["accessKeyId"] if keys else "unused",
        aws_secret_access_key=keys["secretAccessKey"] if keys else "unused",
        config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def user(iam, name, actions):
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return {"user": name, "accessKeyId": key["AccessKeyId"], "secretAccessKey": key["SecretAccessKey"]}


def forward(pairs, stickiness=None):
    """A forward action to [(arn, weight)...]."""
    cfg = {"TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in pairs]}
    if stickiness is not None:
        cfg["TargetGroupStickinessConfig"] = stickiness
    return [{"Type": "forward", "ForwardConfig": cfg}]


def dimension(arn, kind):
    """The CloudWatch dimension value of an ALB or target group ARN: app/NAME/ID, targetgroup/NAME/ID."""
    res = arn.split(":", 5)[5]
    return res[len("loadbalancer/"):] if kind == "lb" else res


def setup(endpoint):
    iam = client(endpoint, "iam")
    admin = user(iam, "moto-admin", ["*"])
    kanaria = user(iam, "kanaria", KANARIA_ACTIONS)
    env = {"endpoint": endpoint, "region": REGION, "admin": admin, "kanaria": kanaria}

    # From here on every request is signed and authorised (the admin's key).
    ec2 = client(env, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=c, AvailabilityZone=z)["Subnet"]["SubnetId"]
        for c, z in (("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b"))
    ]
    sg = ec2.create_security_group(GroupName="web", Description="web tasks", VpcId=vpc)["GroupId"]

    ecs = client(env, "ecs")
    cluster = ecs.create_cluster(clusterName="kanaria-demo")["cluster"]["clusterArn"]

    elb = client(env, "elbv2")
    lb = elb.create_load_balancer(Name="web", Subnets=subnets, SecurityGroups=[sg],
                                  Scheme="internet-facing", Type="application")
    lb = lb["LoadBalancers"][0]["LoadBalancerArn"]
    tgs = {}
    for role, name in (("primary", "web-blue"), ("canary", "web-green"), ("other", "legacy")):
        tgs[role] = elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc,
                                            TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    pair = lambda p, c: [(tgs["primary"], p), (tgs["canary"], c)]  # noqa: E731
    listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                   DefaultActions=forward(pair(100, 0), {"Enabled": False}))
    listener = listener["Listeners"][0]["ListenerArn"]
    rules = {}
    # Two rules that forward to the pair (kanaria must weight them), the host one with
    # stickiness that a rewrite must keep; and a foreign rule that forwards to the primary and
    # a third target group: not the pair, so never touched.
    for role, prio, cond, action in (
        ("path", 10, {"Field": "path-pattern", "Values": ["/api/*"]},
         forward(pair(100, 0), {"Enabled": False})),
        ("host", 20, {"Field": "host-header", "Values": ["shop.example.com"]},
         forward(pair(100, 0), {"Enabled": True, "DurationSeconds": 300})),
        ("foreign", 30, {"Field": "path-pattern", "Values": ["/legacy/*"]},
         forward([(tgs["primary"], 60), (tgs["other"], 40)], {"Enabled": False})),
    ):
        rules[role] = elb.create_rule(ListenerArn=listener, Priority=prio, Conditions=[cond],
                                      Actions=action)["Rules"][0]["RuleArn"]
    env.update({
        "vpc": vpc, "subnets": subnets, "securityGroup": sg, "cluster": cluster,
        "clusterName": "kanaria-demo", "loadBalancerArn": lb, "listenerArn": listener,
        "targetGroups": tgs, "rules": rules,
        "dimensions": {"loadBalancer": dimension(lb, "lb"),
                       "targetGroups": {r: dimension(a, "tg") for r, a in tgs.items()}},
    })
    # Authentication is on: a wrong secret is refused.
    bad = dict(admin, secretAccessKey="0" * 40)
    try:
        client(env, "ecs", bad).list_clusters()
        raise SystemExit("moto_env: moto accepted a wrong secret; start it with "
                         "INITIAL_NO_AUTH_ACTION_COUNT=%d" % NO_AUTH_ACTIONS)
    except Exception as e:  # botocore's ClientError: 403 SignatureDoesNotMatch
        if "SignatureDoesNotMatch" not in str(e):
            raise
    return env


def weights(env):
    """Every forward action of the listener: {ROLE: {"weights": {TGROLE: W}, "stickiness": {...}}}
    for the default action and each rule setup made (roles from env)."""
    elb = client(env, "elbv2")
    tg_role = {a: r for r, a in env["targetGroups"].items()}
    rule_role = {a: r for r, a in env["rules"].items()}

    def fwd(actions):
        for a in actions:
            if a["Type"] == "forward" and "ForwardConfig" in a:
                fc = a["ForwardConfig"]
                return {"weights": {tg_role.get(t["TargetGroupArn"], t["TargetGroupArn"]):
                                    t.get("Weight") for t in fc["TargetGroups"]},
                        "stickiness": fc.get("TargetGroupStickinessConfig")}
        return None

    out = {}
    lst = elb.describe_listeners(ListenerArns=[env["listenerArn"]])["Listeners"][0]
    out["default"] = fwd(lst["DefaultActions"])
    marker = None
    while True:
        kw = {"ListenerArn": env["listenerArn"], "PageSize": 2}
        if marker:
            kw["Marker"] = marker
        page = elb.describe_rules(**kw)
        for r in page["Rules"]:
            if r["IsDefault"]:
                out["default-rule"] = fwd(r["Actions"])
            elif r["RuleArn"] in rule_role:
                out[rule_role[r["RuleArn"]]] = fwd(r["Actions"])
            else:
                out[r["RuleArn"]] = fwd(r["Actions"])
        marker = page.get("NextMarker")
        if not marker:
            break
    return out


def weights_summary(w):
    """"default=100/0 path=100/0 host=100/0 foreign=60/40 sticky=true/300": primary/canary of
    the default action and the two rules, primary/other of the foreign rule, and the host rule's
    stickiness (Enabled/DurationSeconds)."""
    def pc(role, other="canary"):
        ws = (w.get(role) or {}).get("weights", {})
        return "%s/%s" % (ws.get("primary", "-"), ws.get(other, "-"))
    st = (w.get("host") or {}).get("stickiness") or {}
    return "default=%s path=%s host=%s foreign=%s sticky=%s/%s" % (
        pc("default"), pc("path"), pc("host"), pc("foreign", "other"),
        str(st.get("Enabled", "-")).lower(), st.get("DurationSeconds", "-"))


def set_weight(env, rule, primary, canary):
    elb = client(env, "elbv2")
    tgs = env["targetGroups"]
    cur = weights(env)[rule]
    action = forward([(tgs["primary"], primary), (tgs["canary"], canary)], cur["stickiness"])
    if rule == "default":
        elb.modify_listener(ListenerArn=env["listenerArn"], DefaultActions=action)
    else:
        elb.modify_rule(RuleArn=env["rules"][rule], Actions=action)


def put_counts(env, requests, errors, when=None):
    """One datapoint of RequestCount and HTTPCode_Target_5XX_Count per target group, as the ALB
    reports them (namespace AWS/ApplicationELB, dimensions TargetGroup and LoadBalancer)."""
    cw = client(env, "cloudwatch")
    data = []
    for role in ("primary", "canary"):
        dims = [{"Name": "TargetGroup", "Value": env["dimensions"]["targetGroups"][role]},
                {"Name": "LoadBalancer", "Value": env["dimensions"]["loadBalancer"]}]
        for name, value in (("RequestCount", requests[role]),
                            ("HTTPCode_Target_5XX_Count", errors[role])):
            data.append({"MetricName": name, "Dimensions": dims, "Value": value,
                         "Unit": "Count", "Timestamp": when or time.time()})
    cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data)


def feed(env, canary_5xx, primary_5xx, rate, seconds):
    """Every second, `rate` requests per variant and the given share of them as 5xx."""
    end = time.time() + seconds if seconds else None
    while end is None or time.time() < end:
        put_counts(env, {"primary": rate, "canary": rate},
                   {"primary": round(rate * primary_5xx), "canary": round(rate * canary_5xx)})
        time.sleep(1)


def ecs_state(env, cluster, service):
    ecs = client(env, "ecs")
    d = ecs.describe_services(cluster=cluster, services=[service])
    if not d["services"]:
        return {"service": None, "taskSets": []}
    s = d["services"][0]
    tg_role = {a: r for r, a in env["targetGroups"].items()}
    images = {}
    sets = []
    for t in s.get("taskSets", []):
        td = t["taskDefinition"]
        if td not in images:  # DescribeTaskDefinition containerDefinitions[].image
            c = ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]
            images[td] = ",".join(d["image"] for d in c["containerDefinitions"])
        sets.append({
            "taskSetArn": t["taskSetArn"], "status": t["status"], "image": images[td],
            "taskDefinition": td, "scale": t.get("scale", {}).get("value"),
            "targetGroups": [tg_role.get(lb.get("targetGroupArn"), lb.get("targetGroupArn"))
                             for lb in t.get("loadBalancers", [])],
        })
    return {"service": {"status": s["status"],
                        "deploymentController": s.get("deploymentController", {}).get("type"),
                        "taskDefinition": s.get("taskDefinition")},
            "taskSets": sets}


def ecs_summary(state):
    """One "STATUS:IMAGE_TAG:TARGETGROUP:SCALE" per task set, sorted: "PRIMARY:1.25:primary:100"
    (every rollout registers a new revision, so the image tells the versions apart)."""
    return " ".join(sorted("%s:%s:%s:%d" % (t["status"], t["image"].rsplit(":", 1)[-1],
                                            ",".join(t["targetGroups"]), int(t["scale"] or 0))
                           for t in state["taskSets"]))


def calls(env, path):
    """kanaria's requests in moto's recording (MOTO_ENABLE_RECORDING), in order, as
    "service:Op" lines: those signed with the kanaria user's key."""
    key = env["kanaria"]["accessKeyId"]
    out = []
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            h = {k.lower(): v for k, v in e.get("headers", {}).items()}
            auth = h.get("authorization", "")
            if "Credential=%s/" % key not in auth:
                continue
            svc = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[3]
            body = e.get("body") or ""
            if e.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            target = h.get("x-amz-target")
            if target:
                op = target.rsplit(".", 1)[1]
            else:
                op = urllib.parse.parse_qs(body).get("Action", ["?"])[0]
            out.append("%s:%s" % (svc, op))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", default="http://127.0.0.1:5000")
    p.add_argument("--env", help="the JSON setup printed")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup")
    s = sub.add_parser("get")
    s.add_argument("key", help="a dotted path into the setup: kanaria.accessKeyId, subnets")
    s = sub.add_parser("weights")
    s.add_argument("--summary", action="store_true", help="one line (weights_summary)")
    s = sub.add_parser("set-weight")
    s.add_argument("rule")
    s.add_argument("primary", type=int)
    s.add_argument("canary", type=int)
    s = sub.add_parser("feed")
    s.add_argument("--canary-5xx", type=float, default=0.0, help="share of the canary's answers")
    s.add_argument("--primary-5xx", type=float, default=0.0)
    s.add_argument("--rate", type=int, default=50, help="requests per second per variant")
    s.add_argument("--seconds", type=float, default=0, help="0: until stopped")
    s = sub.add_parser("ecs")
    s.add_argument("--summary", action="store_true", help="one line (ecs_summary)")
    s.add_argument("cluster")
    s.add_argument("service")
    s = sub.add_parser("calls")
    s.add_argument("recording")
    a = p.parse_args()
    if a.cmd == "setup":
        json.dump(setup(a.endpoint), sys.stdout, indent=1)
        print()
        return
    with open(a.env) as f:
        env = json.load(f)
    if a.cmd == "get":
        v = env
        for k in a.key.split("."):
            v = v[k]
        print(", ".join(v) if isinstance(v, list) else v)
        return
    if a.cmd == "weights":
        w = weights(env)
        if a.summary:
            print(weights_summary(w))
            return
        json.dump(w, sys.stdout, sort_keys=True)
    elif a.cmd == "set-weight":
        set_weight(env, a.rule, a.primary, a.canary)
    elif a.cmd == "feed":
        try:
            feed(env, a.canary_5xx, a.primary_5xx, a.rate, a.seconds)
        except KeyboardInterrupt:
            pass
        return
    elif a.cmd == "ecs":
        st = ecs_state(env, a.cluster, a.service)
        if a.summary:
            svc = st["service"] or {}
            print("%s %s | %s" % (svc.get("status"), svc.get("deploymentController"), ecs_summary(st)))
            return
        json.dump(st, sys.stdout, sort_keys=True)
    elif a.cmd == "calls":
        print("\n".join(calls(env, a.recording)))
        return
    print()


if __name__ == "__main__":
    main()
