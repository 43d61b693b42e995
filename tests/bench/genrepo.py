#!/usr/bin/env python3
"""Generate a monorepo of N kanaria apps for the benchmarks.

Each app is a folder apps/appNNNNN/ with five YAML files: app.kanaria.yaml (a canary pipeline)
listing four manifests, one LocalService and three small documents of other kinds. The files are
written to a work tree and committed as one commit on branch main.

    genrepo.py DIR N [--server PATH] [--port-base PORT] [--replicas N]
    genrepo.py DIR --touch APP_INDEX      # commit a change to one app's command
"""
import argparse
import os
import subprocess
import sys

APP = """apiVersion: kanaria.dev/v1
kind: Application
metadata:
  name: {name}
  labels: {{team: team-{team}, tier: backend}}
spec:
  manifests: [service.yaml, config.yaml, route.yaml, policy.yaml]
  trigger:
    paths: ["**"]
    ignore: ["docs/**"]
  pipeline:
    - name: CANARY_ROLLOUT
      with: {{replicas: 1}}
    - name: TRAFFIC_ROUTING
      with: {{canary: 10}}
    - name: WAIT
      with: {{duration: 1m}}
    - name: PRIMARY_ROLLOUT
    - name: TRAFFIC_ROUTING
      with: {{primary: 100}}
    - name: CANARY_CLEAN
"""

SERVICE = """apiVersion: kanaria.dev/v1
kind: LocalService
metadata:
  name: {name}
  labels: {{team: team-{team}}}
spec:
  command: [{server}, --port, "{{{{port}}}}"]
  env:
    VERSION: "{version}"
    LOG_LEVEL: info
    CACHE_SIZE: "128"
  replicas: {replicas}
  healthCheck: {{path: /healthz, interval: 1s, timeout: 500ms}}
  frontend: {{bind: "127.0.0.1:{port}"}}
"""

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  greeting: hello from {name}
  timeout: "30s"
  retries: "3"
  upstream: http://backend-{team}.internal:8080
"""

ROUTE = """apiVersion: kanaria.dev/v1
kind: Route
metadata:
  name: {name}-route
spec:
  host: {name}.example.internal
  paths:
    - {{path: /, service: {name}}}
    - {{path: /api, service: {name}, timeout: 10s}}
"""

POLICY = """apiVersion: kanaria.dev/v1
kind: Policy
metadata:
  name: {name}-policy
spec:
  maxSurge: 1
  maxUnavailable: 0
  owners: [team-{team}@example.com]
  notes: |
    {name} belongs to team {team}; page the on-call before a manual rollback.
"""


def git(repo, *args):
    subprocess.run(["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                    "-c", "commit.gpgsign=false", *args], check=True, stdout=subprocess.DEVNULL)


def app_name(i):
    return "app%05d" % i


def write_app(repo, i, server, port_base, version, replicas):
    name = app_name(i)
    d = os.path.join(repo, "apps", name)
    os.makedirs(d, exist_ok=True)
    fields = dict(name=name, team=i % 17, server=server, port=port_base + i, version=version,
                  replicas=replicas)
    for fname, text in (("app.kanaria.yaml", APP), ("service.yaml", SERVICE),
                        ("config.yaml", CONFIG), ("route.yaml", ROUTE), ("policy.yaml", POLICY)):
        with open(os.path.join(d, fname), "w") as f:
            f.write(text.format(**fields))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("n", type=int, nargs="?")
    p.add_argument("--server", default="/usr/bin/true")
    p.add_argument("--port-base", type=int, default=20000)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--touch", type=int, help="commit a new version of this app")
    p.add_argument("--message", default="")
    a = p.parse_args()
    if a.touch is not None:
        path = os.path.join(a.dir, "apps", app_name(a.touch), "service.yaml")
        with open(path) as f:
            text = f.read()
        old = text.split('VERSION: "', 1)[1].split('"', 1)[0]
        new = str(int(old) + 1)
        with open(path, "w") as f:
            f.write(text.replace('VERSION: "%s"' % old, 'VERSION: "%s"' % new, 1))
        git(a.dir, "commit", "-qam", a.message or "%s v%s" % (app_name(a.touch), new))
        return 0
    if a.n is None:
        p.error("N is required")
    os.makedirs(a.dir, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", a.dir], check=True)
    for i in range(a.n):
        write_app(a.dir, i, a.server, a.port_base, 1, a.replicas)
    git(a.dir, "add", "-A")
    git(a.dir, "commit", "-qm", "%d apps" % a.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
