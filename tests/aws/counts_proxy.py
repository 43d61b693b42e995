#!/usr/bin/env python3
"""A pass-through proxy in front of moto_server that gives ECS task sets the counts moto lacks.

    counts_proxy.py --port PORT --moto URL --env env.json

moto 5.2.1's task sets have no computedDesiredCount, runningCount or pendingCount (its TaskSet
has no such attribute), and they are STEADY_STATE at birth. AWS always reports the counts, and
kanaria waits for runningCount == computedDesiredCount before a task set is stable. So this
proxy adds, to every task set in an ECS answer that has none, the counts of a set that
converged at once: computedDesiredCount = ceil(the service's desiredCount x scale%), runningCount
the same, pendingCount 0. That is this proxy's model, not moto's: the moto tests never assert on
these counts (stabilising, partial and stuck counts are tested on kanaria's scripted fake).

Everything else passes unchanged: requests are forwarded byte for byte with their Host header,
so moto still verifies their SigV4 signatures; ELBv2, CloudWatch and IAM answers are not touched.
The service's desiredCount comes from the ECS answers that pass (CreateService, DescribeServices,
UpdateService), else from DescribeServices asked with the setup's admin key.
"""
import argparse
import http.client
import http.server
import json
import math
import sys
import threading
import urllib.parse

desired = {}  # serviceArn -> desiredCount
lock = threading.Lock()
args = None


def note_services(obj):
    if isinstance(obj, dict):
        if "serviceArn" in obj and "desiredCount" in obj and "serviceName" in obj:
            with lock:
                desired[obj["serviceArn"]] = obj["desiredCount"]
        for v in obj.values():
            note_services(v)
    elif isinstance(obj, list):
        for v in obj:
            note_services(v)


def desired_count(service_arn):
    with lock:
        if service_arn in desired:
            return desired[service_arn]
    # arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/NAME
    _, cluster, name = service_arn.split(":", 5)[5].split("/")
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import moto_env  # noqa: E402 (boto3 only when needed)
    with open(args.env) as f:
        env = json.load(f)
    s = moto_env.client(env, "ecs").describe_services(cluster=cluster, services=[name])
    n = s["services"][0]["desiredCount"] if s["services"] else 0
    with lock:
        desired[service_arn] = n
    return n


def fill(obj):
    if isinstance(obj, dict):
        if "taskSetArn" in obj and "serviceArn" in obj and "computedDesiredCount" not in obj:
            scale = (obj.get("scale") or {}).get("value", 0.0)
            n = math.ceil(desired_count(obj["serviceArn"]) * scale / 100.0 - 1e-9)
            obj["computedDesiredCount"] = n
            obj["runningCount"] = n
            obj["pendingCount"] = 0
        for v in obj.values():
            fill(v)
    elif isinstance(obj, list):
        for v in obj:
            fill(v)


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # one line per request, on stderr
        sys.stderr.write("counts_proxy: %s\n" % (fmt % a))

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        u = urllib.parse.urlsplit(args.moto)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        # skip_host: the client's Host header goes as it came (it is signed)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        target = self.headers.get("X-Amz-Target") or ""
        if target.startswith("AmazonEC2ContainerService") and r.status == 200:
            try:
                obj = json.loads(data)
                note_services(obj)
                fill(obj)
                data = json.dumps(obj).encode()
            except ValueError:
                pass
        self.send_response_only(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = forward


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--moto", required=True, help="moto_server's URL")
    p.add_argument("--env", required=True, help="the setup moto_env.py printed")
    args = p.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Proxy)
    srv.daemon_threads = True
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
