#!/usr/bin/env python3
"""`make bench`: kanaria's figures on this machine, printed as one table and written as JSON.

    run.py [--quick] [--build DIR] [--json PATH] [--keep]

Every figure is a median over several runs; the ratios are taken against a reference measured in
the same run (the bare libyaml parse, `git fetch`), because the machine is shared and noisy.
--quick is the smoke size (100 apps, one run each): it checks that every figure can be measured
and exits 0 when all were, whatever the values. Without --quick the exit code is also 0 when
every figure was measured; the verdicts are in the table, not in the exit code.
"""
import argparse
import calendar
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
GENREPO = os.path.join(HERE, "genrepo.py")
AWS_FAKE = os.path.join(SOURCE, "tests", "fakes", "aws_fake.py")
# a plan slower than this (seconds) is run once more, not self.runs times: the figure is far off
# its target either way, and the run must end in minutes
SLOW_S = 20


class Bench:
    def __init__(self, args):
        self.quick = args.quick
        self.build = os.path.abspath(args.build)
        self.kanaria = os.path.join(self.build, "kanaria")
        self.server = find_tool(self.build, "kanaria_test_server")
        self.yaml_floor = find_tool(self.build, "kanaria_bench_yaml")
        self.fetcher = find_tool(self.build, "kanaria_bench_fetch")
        self.tmp = tempfile.mkdtemp(prefix="kanaria-bench-")
        self.keep = args.keep
        self.figures = []
        self.sizes = [100] if self.quick else [100, 1000, 10000]
        self.runs = 1 if self.quick else 5
        self.serves = []
        self.fakes = []

    # ---- helpers ----------------------------------------------------------------------------

    def log(self, msg):
        print("bench: " + msg, file=sys.stderr, flush=True)

    def figure(self, name, value, unit, target, meets, how, extra=None):
        f = {"figure": name, "value": value, "unit": unit, "target": target, "meets": meets,
             "how": how}
        if extra:
            f.update(extra)
        self.figures.append(f)
        shown = "not measured" if value is None else "%s %s" % (fmt(value), unit)
        self.log("%s: %s" % (name, shown))

    def run_rusage(self, argv, stdin_path=None):
        """Run argv with stdout to /dev/null; return (seconds, peak RSS KiB, exit code)."""
        stdin = open(stdin_path if stdin_path else os.devnull, "rb")
        with open(os.devnull, "wb") as devnull:
            t0 = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, os.environ,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, stdin.fileno(), 0),
                                               (os.POSIX_SPAWN_DUP2, devnull.fileno(), 1)])
            _, status, ru = os.wait4(pid, 0)
            elapsed = time.perf_counter() - t0
        stdin.close()
        return elapsed, ru.ru_maxrss, os.waitstatus_to_exitcode(status)

    def git(self, repo, *args, check=True):
        return subprocess.run(["git", "-C", repo, "-c", "user.name=bench",
                               "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false",
                               *args], check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True).stdout.strip()

    def genrepo(self, path, n, *extra):
        subprocess.run([sys.executable, GENREPO, path, str(n), *extra], check=True)

    # ---- plan figures -----------------------------------------------------------------------

    def bench_plan(self):
        largest = None
        for n in self.sizes:
            repo = os.path.join(self.tmp, "mono-%d" % n)
            self.log("generating %d apps" % n)
            self.genrepo(repo, n)
            # a mirror fetched by kanaria holds packs, not loose objects
            self.git(repo, "repack", "-adq")
            files = os.path.join(self.tmp, "files-%d" % n)
            with open(files, "w") as f:
                for root, _, names in os.walk(os.path.join(repo, "apps")):
                    for name in sorted(names):
                        f.write(os.path.join(root, name) + "\n")
            plan_argv = [self.kanaria, "plan", repo, "--to", "HEAD"]
            # a first pass of each checks the output and warms the page cache; a plan that
            # takes longer than SLOW_S is measured by that pass alone
            t0 = time.perf_counter()
            out = subprocess.run(plan_argv, stdout=subprocess.PIPE, text=True)
            first = time.perf_counter() - t0
            planned = out.stdout.count(": QUICK_SYNC  ")
            if out.returncode != 0 or planned != n:
                raise RuntimeError("kanaria plan of %d apps: exit %d, %d planned"
                                   % (n, out.returncode, planned))
            self.run_rusage([self.yaml_floor], files)
            times, floors, ratios, rss = [], [], [], []
            for _ in range(1 if first > SLOW_S else self.runs):
                t, r, rc = self.run_rusage(plan_argv)
                f, _, frc = self.run_rusage([self.yaml_floor], files)
                if rc != 0 or frc != 0:
                    raise RuntimeError("plan exit %d, yaml floor exit %d" % (rc, frc))
                times.append(t)
                floors.append(f)
                ratios.append(t / f)
                rss.append(r)
            self.figure("full plan, %d apps" % n, median(times) * 1e3, "ms",
                        "< 2000 ms" if n == 10000 else "-",
                        median(times) < 2.0 if n == 10000 else None,
                        "kanaria plan --to HEAD of a first commit: every app planned",
                        {"samples_ms": [t * 1e3 for t in times]})
            self.figure("full plan peak RSS, %d apps" % n, max(rss) / 1024, "MB",
                        "< 200 MB" if n == 10000 else "-",
                        max(rss) / 1024 < 200 if n == 10000 else None,
                        "ru_maxrss of kanaria plan")
            self.figure("YAML cost ratio, %d apps" % n, median(ratios), "x",
                        "<= 3x" if n == max(self.sizes) else "-",
                        median(ratios) <= 3 if n == max(self.sizes) else None,
                        "full plan / bare libyaml event parse of the same %d files "
                        "(floor %.0f ms)" % (5 * n, median(floors) * 1e3),
                        {"floor_ms": median(floors) * 1e3})
            largest = repo
        # one app changed in the largest repo
        n = max(self.sizes)
        subprocess.run([sys.executable, GENREPO, largest, "--touch", str(n // 2)], check=True)
        self.git(largest, "repack", "-adq")
        # `kanaria plan` is a fresh process: it has no cache and loads every app, as `kanaria
        # serve` does at its first planning after a start
        argv = [self.kanaria, "plan", largest, "--from", "HEAD~1", "--to", "HEAD"]
        t0 = time.perf_counter()
        out = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
        first = time.perf_counter() - t0
        if out.returncode != 0 or out.stdout.count(": PIPELINE  ") != 1:
            raise RuntimeError("plan of one changed app: exit %d" % out.returncode)
        times = [self.run_rusage(argv)[0] for _ in range(1 if first > SLOW_S else self.runs)]
        self.figure("one-app commit after a start (no cache), %d apps" % n, median(times) * 1e3,
                    "ms", "-", None,
                    "kanaria plan --from HEAD~1 of a commit changing one app: every app loaded",
                    {"samples_ms": [t * 1e3 for t in times]})
        self.bench_incremental(largest, n)

    def bench_incremental(self, repo, n):
        """The incremental plan of kanaria serve (kanaria_bench_plan) against git diff-tree."""
        runs = 3 if self.quick else 15
        driver = find_tool(self.build, "kanaria_bench_plan")
        out = subprocess.run([driver, repo, "HEAD~1", "HEAD", str(runs)], stdout=subprocess.PIPE,
                             text=True)
        if out.returncode != 0:
            raise RuntimeError("kanaria_bench_plan: exit %d" % out.returncode)
        res = json.loads(out.stdout)
        if res["loaded"] != 1 or res["planned"] != 1 or res["apps"] != n:
            raise RuntimeError("incremental plan: %d of %d apps loaded, %d planned (1 and 1 "
                               "expected)" % (res["loaded"], res["apps"], res["planned"]))
        diff_tree = ["git", "-C", repo, "diff-tree", "-r", "--name-only", "HEAD~1", "HEAD"]
        floors = [self.run_rusage([shutil.which("git")] + diff_tree[1:])[0]
                  for _ in range(runs)]
        inc = median(res["runs_ms"])
        floor = median(floors) * 1e3
        self.figure("incremental plan, 1 app of %d" % n, inc, "ms", "< 20 ms", inc < 20,
                    "kanaria_bench_plan: the detection kanaria serve runs on a new head, with the "
                    "cache of the head before; median of %d; 1 app loaded and planned (a plan "
                    "without the cache, same commits, same result: %.0f ms)"
                    % (runs, res["full_ms"]),
                    {"samples_ms": res["runs_ms"], "full_ms": res["full_ms"]})
        self.figure("incremental plan / git diff-tree, 1 app of %d" % n, inc / floor, "x",
                    "<= 3x", inc / floor <= 3,
                    "against `git diff-tree -r --name-only` of the same two commits, a process "
                    "(median %.1f ms)" % floor, {"floor_ms": floor})

    # ---- fetch ratio ------------------------------------------------------------------------

    def bench_fetch(self):
        n_apps = 100 if self.quick else 1000
        commits = 5 if self.quick else 50
        upstream = os.path.join(self.tmp, "fetch-upstream")
        self.genrepo(upstream, n_apps)
        url = "file://" + upstream
        mirror0 = os.path.join(self.tmp, "fetch-mirror0.git")
        clone0 = os.path.join(self.tmp, "fetch-clone0.git")
        subprocess.run([self.fetcher, mirror0, url, "main"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["git", "init", "-q", "--bare", clone0], check=True)
        self.git(clone0, "fetch", "-q", url, "+refs/heads/main:refs/heads/main")
        for i in range(commits):
            subprocess.run([sys.executable, GENREPO, upstream, "--touch", str(i % n_apps)],
                           check=True)
        head = self.git(upstream, "rev-parse", "HEAD")
        ours, theirs, ratios = [], [], []
        for r in range(self.runs):
            m = os.path.join(self.tmp, "fetch-m%d.git" % r)
            c = os.path.join(self.tmp, "fetch-c%d.git" % r)
            shutil.copytree(mirror0, m, symlinks=True)
            shutil.copytree(clone0, c, symlinks=True)
            t0 = time.perf_counter()
            out = subprocess.run([self.fetcher, m, url, "main"], stdout=subprocess.PIPE, text=True)
            t1 = time.perf_counter()
            subprocess.run(["git", "-C", c, "fetch", "-q", url, "+refs/heads/main:refs/heads/main"],
                           check=True)
            t2 = time.perf_counter()
            if out.returncode != 0 or not out.stdout.startswith(head):
                raise RuntimeError("kanaria fetch did not bring %s: %s" % (head, out.stdout))
            if self.git(c, "rev-parse", "main") != head:
                raise RuntimeError("git fetch did not bring %s" % head)
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
            ratios.append((t1 - t0) / (t2 - t1))
            shutil.rmtree(m)
            shutil.rmtree(c)
        self.figure("fetch ratio", median(ratios), "x", "<= 1.2x", median(ratios) <= 1.2,
                    "kanaria's mirror fetch of %d new commits (%d apps, file://) vs git fetch: "
                    "%.0f ms vs %.0f ms" % (commits, n_apps, median(ours) * 1e3,
                                            median(theirs) * 1e3),
                    {"kanaria_ms": median(ours) * 1e3, "git_ms": median(theirs) * 1e3})

    # ---- a running kanaria serve --------------------------------------------------------------

    def serve_start(self, name, repos, users="", platforms=None, env=None):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        api = free_port()
        ports = 30000 + (os.getpid() * 7 + len(self.serves) * 997) % 20000
        cfg = os.path.join(d, "kanaria.yaml")
        with open(cfg, "w") as f:
            f.write("dataDir: %s/data\nlisten: 127.0.0.1:%d\n" % (d, api))
            f.write(platforms or
                    "platforms:\n  - name: local\n    type: local\n"
                    "    haproxy: {metricsBind: \"127.0.0.1:%d\"}\n"
                    "    ports: {min: %d, max: %d}\n" % (free_port(), ports, ports + 400))
            f.write("repositories:\n" + repos + users)
        logf = open(os.path.join(d, "log"), "w")
        p = subprocess.Popen([self.kanaria, "serve", "-c", cfg], stdout=logf, stderr=logf,
                             env=env)
        s = {"dir": d, "proc": p, "api": "http://127.0.0.1:%d" % api,
             "db": os.path.join(d, "data", "kanaria.db"), "log": os.path.join(d, "log")}
        self.serves.append(s)
        return s

    def serve_stop(self, s):
        if s["proc"].poll() is None:
            s["proc"].terminate()
            try:
                s["proc"].wait(20)
            except subprocess.TimeoutExpired:
                s["proc"].kill()
                s["proc"].wait()
        stop_local_platform(os.path.join(s["dir"], "data"))

    def sql(self, s, query, args=()):
        try:
            c = sqlite3.connect(s["db"], timeout=5)
            try:
                return c.execute(query, args).fetchall()
            finally:
                c.close()
        except sqlite3.OperationalError:
            return []

    def wait_sql(self, s, query, args=(), until=lambda rows: bool(rows), timeout=60, every=0.002):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = self.sql(s, query, args)
            if until(rows):
                return rows
            if s["proc"].poll() is not None:
                raise RuntimeError("kanaria serve exited %d; see %s" % (s["proc"].returncode,
                                                                         s["log"]))
            time.sleep(every)
        raise RuntimeError("timed out waiting for %s %r; see %s" % (query, args, s["log"]))

    def webhook(self, s, secret, repo_dir):
        body = json.dumps({"ref": "refs/heads/main", "after": self.git(repo_dir, "rev-parse", "HEAD"),
                           "repository": {"clone_url": "file://" + repo_dir}}).encode()
        sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(s["api"] + "/api/v1/webhooks/git", data=body, method="POST",
                                     headers={"X-Hub-Signature-256": "sha256=" + sig,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 202:
                raise RuntimeError("webhook: HTTP %d" % r.status)

    def write_app(self, repo, name, pipeline, version, bind, replicas=1):
        d = os.path.join(repo, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "app.kanaria.yaml"), "w") as f:
            f.write("apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: %s}\n"
                    "spec:\n  manifests: [service.yaml]\n  pipeline:\n%s" % (name, pipeline))
        with open(os.path.join(d, "service.yaml"), "w") as f:
            f.write("apiVersion: kanaria.dev/v1\nkind: LocalService\nmetadata: {name: %s}\n"
                    "spec:\n  command: [%s, --port, \"{{port}}\"]\n  env: {VERSION: \"%s\"}\n"
                    "  replicas: %d\n"
                    "  healthCheck: {path: /healthz, interval: 200ms, timeout: 200ms}\n"
                    "  frontend: {bind: \"127.0.0.1:%d\"}\n"
                    % (name, self.server, version, replicas, bind))

    def bump(self, repo, name):
        path = os.path.join(repo, name, "service.yaml")
        with open(path) as f:
            text = f.read()
        v = int(re.search(r'VERSION: "(\d+)"', text).group(1)) + 1
        with open(path, "w") as f:
            f.write(re.sub(r'VERSION: "\d+"', 'VERSION: "%d"' % v, text))
        self.git(repo, "commit", "-qam", "%s v%d" % (name, v))
        return self.git(repo, "rev-parse", "HEAD")

    def init_repo(self, path):
        subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)

    # ---- detection, approval, rollback ------------------------------------------------------

    def bench_live(self):
        hook, poll, canary = (os.path.join(self.tmp, r) for r in ("r-hook", "r-poll", "r-canary"))
        secret1, secret2 = "bench-hook-1", "bench-hook-2"
        for path, secret in ((os.path.join(self.tmp, "secret1"), secret1),
                             (os.path.join(self.tmp, "secret2"), secret2)):
            with open(path, "w") as f:
                f.write(secret + "\n")
        waiting = ("    - name: WAIT_APPROVAL\n    - name: PRIMARY_ROLLOUT\n")
        approvals = ("    - name: WAIT_APPROVAL\n    - name: WAIT_APPROVAL\n"
                     "    - name: WAIT_APPROVAL\n    - name: PRIMARY_ROLLOUT\n")
        dead = free_port()
        failing = ("    - name: CANARY_ROLLOUT\n      with: {replicas: 1}\n"
                   "    - name: TRAFFIC_ROUTING\n      with: {canary: 50}\n"
                   "    - name: ANALYSIS\n      with:\n        duration: 30s\n        http:\n"
                   "          - {name: probe, url: \"http://127.0.0.1:%d/healthz\", interval: 1s,"
                   " timeout: 500ms}\n"
                   "    - name: PRIMARY_ROLLOUT\n    - name: TRAFFIC_ROUTING\n"
                   "      with: {primary: 100}\n    - name: CANARY_CLEAN\n" % dead)
        for repo, apps in ((hook, [("hooked", waiting)]), (poll, [("polled", waiting)]),
                           (canary, [("approving", approvals), ("failing", failing)])):
            self.init_repo(repo)
            for name, pipeline in apps:
                self.write_app(repo, name, pipeline, 1, free_port())
            self.git(repo, "add", "-A")
            self.git(repo, "commit", "-qm", "first")
        token = "bench-approver-token"
        repos = ("  - {name: hook, url: \"file://%s\", branch: main, pollInterval: 1h,"
                 " webhook: {secretFile: %s/secret1}}\n"
                 "  - {name: poll, url: \"file://%s\", branch: main, pollInterval: 1s}\n"
                 "  - {name: canary, url: \"file://%s\", branch: main, pollInterval: 1h,"
                 " webhook: {secretFile: %s/secret2}}\n" % (hook, self.tmp, poll, canary, self.tmp))
        users = ("users:\n  - {name: alice, role: approver, tokenSha256: %s}\n"
                 % hashlib.sha256(token.encode()).hexdigest())
        s = self.serve_start("live", repos, users)
        self.log("waiting for the first deployments")
        self.wait_sql(s, "select count(*) from deployments where status = 'SUCCESS'",
                      until=lambda rows: rows and rows[0][0] == 4, timeout=120, every=0.2)
        samples = 1 if self.quick else 15
        deployment_of = "select id from deployments where commit_id = ? and app = ?"

        # detection by webhook: a pipeline deployment then waits for approval; later commits
        # are planned behind it
        hooks = []
        for _ in range(samples):
            head = self.bump(hook, "hooked")
            t0 = time.perf_counter()
            self.webhook(s, secret1, hook)
            self.wait_sql(s, deployment_of, (head, "hooked"))
            hooks.append(time.perf_counter() - t0)
            time.sleep(0.1)
        self.figure("detection by webhook", median(hooks) * 1e3, "ms", "p50 < 100 ms",
                    median(hooks) < 0.1, "signed webhook POST -> deployment row in the store",
                    {"samples_ms": [t * 1e3 for t in hooks]})
        polls = []
        for _ in range(1 if self.quick else 8):
            head = self.bump(poll, "polled")
            t0 = time.perf_counter()
            self.wait_sql(s, deployment_of, (head, "polled"), timeout=30)
            polls.append(time.perf_counter() - t0)
        # the next poll is up to interval + 10% jitter away; the webhook figure is the fetch
        bound = 1.1 + median(hooks)
        self.figure("detection by polling at 1s", median(polls) * 1e3, "ms",
                    "max <= interval (+10%% jitter) + fetch = %.0f ms" % (bound * 1e3),
                    max(polls) <= bound, "git commit -> deployment row; max %.0f ms"
                    % (max(polls) * 1e3),
                    {"samples_ms": [t * 1e3 for t in polls], "max_ms": max(polls) * 1e3})

        # approval reaction: `kanaria approve` -> the next stage's row is RUNNING
        env = dict(os.environ, KANARIA_ADDR=s["api"], KANARIA_TOKEN=token)
        reacts = []
        for _ in range(1 if self.quick else 3):
            head = self.bump(canary, "approving")
            self.webhook(s, secret2, canary)
            dep = self.wait_sql(s, deployment_of, (head, "approving"))[0][0]
            for stage in range(3):
                self.wait_sql(s, "select 1 from stages where deployment = ? and idx = ? and "
                              "status = 'RUNNING'", (dep, stage), every=0.01)
                t0 = time.perf_counter()
                subprocess.run([self.kanaria, "approve", "approving"], env=env, check=True,
                               stdout=subprocess.DEVNULL)
                self.wait_sql(s, "select 1 from stages where deployment = ? and idx = ? and "
                              "started_at > 0", (dep, stage + 1))
                reacts.append(time.perf_counter() - t0)
            self.wait_sql(s, "select 1 from deployments where id = ? and status = 'SUCCESS'",
                          (dep,), every=0.05)
        self.figure("approval reaction", median(reacts) * 1e3, "ms", "p50 < 100 ms",
                    median(reacts) < 0.1, "kanaria approve -> next stage started (store)",
                    {"samples_ms": [t * 1e3 for t in reacts]})

        # rollback reaction: the failing verdict's log line -> canary weight 0 on the admin socket
        sock = os.path.join(s["dir"], "data", "local", "local", "haproxy.sock")
        rolls = []
        for _ in range(1 if self.quick else 5):
            head = self.bump(canary, "failing")
            self.webhook(s, secret2, canary)
            dep = self.wait_sql(s, deployment_of, (head, "failing"))[0][0]
            self.wait_sql(s, "select 1 from stages where deployment = ? and idx = 2 and "
                          "status = 'RUNNING'", (dep,), timeout=60, every=0.01)
            if canary_weight(sock, "failing") <= 0:
                raise RuntimeError("the canary takes no traffic at the analysis")
            while True:
                w = canary_weight(sock, "failing")
                if w <= 0:
                    flipped = time.time()
                    break
                if s["proc"].poll() is not None:
                    raise RuntimeError("kanaria serve exited")
                time.sleep(0.002)
            failed_at = log_time(s["log"], r"deployment=%d\b.*check 'probe': FAIL" % dep)
            if failed_at is None:
                raise RuntimeError("no FAIL verdict logged for deployment %d" % dep)
            rolls.append(flipped - failed_at)
            self.wait_sql(s, "select 1 from deployments where id = ? and status = 'FAILURE'",
                          (dep,), every=0.05)
        self.figure("rollback reaction", median(rolls) * 1e3, "ms", "p50 < 100 ms",
                    median(rolls) < 0.1,
                    "log line of the FAIL verdict -> canary weight 0 in `show servers state`",
                    {"samples_ms": [t * 1e3 for t in rolls]})
        self.serve_stop(s)

    # ---- Kubernetes API budget ----------------------------------------------------------------

    def kube_fake(self, d):
        """tests/fakes/kube_fake.py on a free loopback port (plain HTTP, no token); its URL."""
        fake_py = os.path.join(SOURCE, "tests", "fakes", "kube_fake.py")
        py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        port_file = os.path.join(d, "fake.port")
        logf = open(os.path.join(d, "fake.log"), "w")
        p = subprocess.Popen([py, fake_py, "--port", "0", "--port-file", port_file],
                             stdout=logf, stderr=logf)
        self.fakes.append(p)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
                with open(port_file) as f:
                    return "http://127.0.0.1:%d" % int(f.read().strip())
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the fake API server did not start; see %s/fake.log" % d)

    def kube_app(self, repo, image, probe):
        """The app web in namespace shop: Deployment (2 replicas), Service, HTTPRoute; a canary
        at 10% then 50%, an HTTP check between, the primary rolled, the canary cleaned."""
        d = os.path.join(repo, "web")
        os.makedirs(d, exist_ok=True)
        files = {
            "namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
            "service.yaml": "apiVersion: v1\nkind: Service\n"
                            "metadata: {name: web, namespace: shop}\n"
                            "spec:\n  selector: {app: web}\n"
                            "  ports: [{name: http, port: 80, targetPort: 8080}]\n",
            "deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
                           "metadata: {name: web, namespace: shop, labels: {app: web}}\n"
                           "spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n"
                           "  template:\n    metadata: {labels: {app: web}}\n"
                           "    spec: {containers: [{name: web, image: \"%s\"}]}\n" % image,
            "route.yaml": "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                          "metadata: {name: web, namespace: shop}\n"
                          "spec:\n  parentRefs: [{name: gateway, namespace: shop}]\n"
                          "  rules: [{backendRefs: [{name: web, port: 80}]}]\n",
            "app.kanaria.yaml": "apiVersion: kanaria.dev/v1\nkind: Application\n"
                                "metadata: {name: web}\nspec:\n  platform: k8s\n"
                                "  manifests: [namespace.yaml, service.yaml, deploy.yaml, "
                                "route.yaml]\n"
                                "  kubernetes:\n    namespace: shop\n"
                                "    workload: {kind: Deployment, name: web}\n    service: web\n"
                                "    trafficRouting: {method: gatewayapi, "
                                "gatewayapi: {httpRoute: web}}\n"
                                "  pipeline:\n"
                                "    - name: CANARY_ROLLOUT\n      with: {replicas: 1}\n"
                                "    - name: TRAFFIC_ROUTING\n      with: {canary: 10}\n"
                                "    - name: ANALYSIS\n      with:\n        duration: 1s\n"
                                "        http:\n          - {name: probe, url: \"%s\", "
                                "interval: 1s, timeout: 500ms}\n"
                                "    - name: TRAFFIC_ROUTING\n      with: {canary: 50}\n"
                                "    - name: PRIMARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n      with: {primary: 100}\n"
                                "    - name: CANARY_CLEAN\n" % probe,
        }
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-qm", "web " + image)
        return self.git(repo, "rev-parse", "HEAD")

    def bench_kube(self):
        d = os.path.join(self.tmp, "kube")
        os.makedirs(d, exist_ok=True)
        url = self.kube_fake(d)
        # pods that take 2 s each to start, as in a cluster whose images are cached: a wait long
        # enough for a poll to show; --quick runs the fake's clock 5 times faster
        fake_call(url, "script", {"speed": 5} if self.quick else {"podSeconds": 2.0})
        with open(os.path.join(d, "kubeconfig"), "w") as f:
            f.write("apiVersion: v1\nkind: Config\n"
                    "clusters: [{name: fake, cluster: {server: \"%s\"}}]\n"
                    "users: [{name: u, user: {token: bench}}]\n"
                    "contexts: [{name: fake, context: {cluster: fake, user: u, "
                    "namespace: default}}]\ncurrent-context: fake\n" % url)
        repo = os.path.join(d, "upstream")
        self.init_repo(repo)
        self.kube_app(repo, "web:1", url + "/healthz")
        platform = ("platforms:\n  - {name: k8s, type: kubernetes, kubeconfig: %s/kubeconfig, "
                    "qps: 50}\n" % d)
        s = self.serve_start("kube", "  - {name: deploy, url: \"file://%s\", branch: main, "
                             "pollInterval: 1s}\n" % repo, platforms=platform)
        by_commit = "select id, status from deployments where commit_id = ?"
        done = lambda rows: rows and rows[0][1] in ("SUCCESS", "FAILURE", "CANCELLED")
        self.log("kube: the quick sync")
        self.wait_sql(s, "select status from deployments where status in ('SUCCESS', 'FAILURE')",
                      timeout=60, every=0.1)
        head = self.kube_app(repo, "web:2", url + "/healthz")
        self.log("kube: a canary that passes")
        ok = self.wait_sql(s, by_commit, (head,), until=done, timeout=120, every=0.1)[0]
        head = self.kube_app(repo, "web:3", "http://127.0.0.1:%d/healthz" % free_port())
        self.log("kube: a canary that fails its analysis")
        bad = self.wait_sql(s, by_commit, (head,), until=done, timeout=120, every=0.1)[0]
        if ok[1] != "SUCCESS" or bad[1] != "FAILURE":
            raise RuntimeError("deployments ended %s and %s, not SUCCESS and FAILURE; see %s"
                               % (ok[1], bad[1], s["log"]))
        time.sleep(0.3)  # the last requests' ends are logged
        log = fake_call(url, "requests")
        self.serve_stop(s)
        stages = {}
        for dep in (ok[0], bad[0]):
            stages[dep] = self.sql(s, "select idx, name, started_at, finished_at from stages "
                                      "where deployment = ? and started_at > 0 order by idx",
                                   (dep,))
        counts, polls = {}, []
        for dep, label in ((ok[0], "canary"), (bad[0], "failed")):
            per_stage, polled = kube_stage_counts(log, stages[dep])
            counts[label] = per_stage
            polls += polled
        total = {k: sum(n for st in v for n in st["verbs"].values()) for k, v in counts.items()}
        verdict = log_time(s["log"], r"deployment=%d\b.*check 'probe': FAIL" % bad[0])
        if verdict is None:
            raise RuntimeError("no FAIL verdict logged for deployment %d" % bad[0])
        waves, restored = kube_rollback_waves(log, verdict)
        if restored is None:
            raise RuntimeError("no route write took the canary's weight away after the verdict")
        # the counts are exact and the same at every run: the targets are today's, so that a
        # request added to a stage shows as a miss to explain
        self.figure("kube requests, canary", total["canary"], "requests", "<= 15",
                    total["canary"] <= 15,
                    "API requests during the stages of one passing canary deployment "
                    "(10%, 50%, primary, clean) on the fake; by stage and verb in extra",
                    {"stages": counts["canary"]})
        self.figure("kube requests, rollback", total["failed"], "requests", "<= 10",
                    total["failed"] <= 10,
                    "API requests during the stages of a canary that fails its analysis and "
                    "rolls back", {"stages": counts["failed"]})
        self.figure("kube polling requests", len(polls), "requests", "0", not polls,
                    "LISTs that no watch follows and GETs repeated inside a stage, in both "
                    "deployments (state comes from watches)",
                    {"repeated": polls})
        self.figure("kube rollback round trips", waves, "round trips", "<= 1", waves <= 1,
                    "sequential waves of requests from the FAIL verdict's log line to the end of "
                    "the route write that takes the canary's weight away (%.0f ms)"
                    % ((restored - verdict) * 1e3), {"ms": (restored - verdict) * 1e3})

    # ---- cloud API budget: the ECS platform's calls -------------------------------------------

    def bench_ecs(self):
        """One canary and one rollback on the ecs platform against tests/fakes/aws_fake.py: the
        fake's log gives the calls of each stage, and the round trips of the rollback."""
        fake = subprocess.Popen([sys.executable, AWS_FAKE], stdout=subprocess.PIPE, text=True)
        probe = None
        try:
            line = fake.stdout.readline().split()
            if len(line) != 2 or line[0] != "listening":
                raise RuntimeError("aws_fake.py did not start: %r" % line)
            url = "http://127.0.0.1:%s" % line[1]
            probe = ProbeServer()
            self.ecs_deployments(url, probe)
        finally:
            if probe:
                probe.stop()
            fake.terminate()
            try:
                fake.wait(10)
            except subprocess.TimeoutExpired:
                fake.kill()
                fake.wait()

    def ecs_deployments(self, url, probe):
        control(url, "/__setup", ECS_WORLD)
        # task sets steady at their first poll, drained at the next: the counts do not depend on
        # how long ECS takes; every call is held a while (ELBv2's 50 ms, ECS's 10 ms), so that
        # calls sent together overlap even on a loaded machine
        control(url, "/__faults", {"newTaskSets": {"pollsUntilSteady": 1, "drainPolls": 1},
                                   "delays": [{"service": "elasticloadbalancing", "ms": 50},
                                              {"ms": 10}]})
        repo = os.path.join(self.tmp, "ecs-repo")
        self.init_repo(repo)
        write_ecs_app(repo, 1, probe.url)
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-qm", "shop v1")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ECS_WORLD["users"][0]["accessKeyId"],
                   AWS_SECRET_ACCESS_KEY=ECS_WORLD["users"][0]["secretAccessKey"],
                   AWS_EC2_METADATA_DISABLED="true")
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION",
                  "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            env.pop(k, None)
        platforms = ("driftInterval: 0\nplatforms:\n  - name: aws\n    type: ecs\n"
                     "    region: us-east-1\n    endpointUrl: \"%s\"\n" % url)
        s = self.serve_start("ecs", "  - {name: ecs, url: \"file://%s\", branch: main, "
                             "pollInterval: 1s}\n" % repo, platforms=platforms, env=env)
        done = "select id, status from deployments where commit_id = ? and status in " \
               "('SUCCESS', 'FAILURE')"
        self.log("ecs: the first sync")
        self.wait_sql(s, done, (self.git(repo, "rev-parse", "HEAD"),), timeout=60, every=0.1)
        deps = {}
        for version, verdict in ((2, "SUCCESS"), (3, "FAILURE")):
            probe.failing = verdict == "FAILURE"
            write_ecs_app(repo, version, probe.url)
            self.git(repo, "commit", "-qam", "shop v%d" % version)
            self.log("ecs: deployment of v%d (expected %s)" % (version, verdict))
            rows = self.wait_sql(s, done, (self.git(repo, "rev-parse", "HEAD"),), timeout=120,
                                 every=0.1)
            if rows[0][1] != verdict:
                raise RuntimeError("the deployment of v%d ended %s, not %s; see %s"
                                   % (version, rows[0][1], verdict, s["log"]))
            deps[verdict] = rows[0][0]
        calls = control(url, "/__log")["calls"]
        self.serve_stop(s)
        failing = deps["FAILURE"]
        stages = {}
        for verdict, dep in deps.items():
            stages[verdict] = self.sql(s, "select idx, name, started_at, finished_at from stages "
                                          "where deployment = ? order by started_at, idx", (dep,))
        # a call belongs to the stage that was running when the fake read it
        per_stage = []
        for verdict in ("SUCCESS", "FAILURE"):
            for idx, name, t0, t1 in stages[verdict]:
                mine = [c for c in calls if t0 / 1e3 <= c["start"] <= t1 / 1e3 + 0.001]
                per_stage.append((verdict, idx, name, mine))
        traffic = iter(("10%", "50%", "primary 100%"))
        for verdict, idx, name, mine in per_stage:
            if verdict == "SUCCESS" and name in ("ANALYSIS",):
                continue
            if verdict == "FAILURE" and name != "ROLLBACK":
                continue
            label = name + (" " + next(traffic) if name == "TRAFFIC_ROUTING" else "")
            target = ECS_TARGETS.get(label)
            self.figure("ECS calls, %s" % label, len(mine), "calls",
                        "<= %d" % target if target is not None else "-",
                        len(mine) <= target if target is not None else None,
                        "the ECS and ELBv2 calls aws_fake.py logged during the stage: %s"
                        % by_action(mine), {"actions": actions_of(mine)})
        total = [c for verdict, _, _, mine in per_stage if verdict == "SUCCESS" for c in mine]
        t0 = min(r[2] for r in stages["SUCCESS"]) / 1e3
        t1 = max(r[3] for r in stages["SUCCESS"]) / 1e3 + 0.001
        between = [c for c in calls if t0 <= c["start"] <= t1 and c not in total]
        self.figure("ECS calls, one canary deployment", len(total), "calls",
                    "<= %d" % ECS_TARGETS["total"], len(total) <= ECS_TARGETS["total"],
                    "every stage of the deployment above, with the analysis (no AWS call: an "
                    "HTTP check): %s; %d call(s) between stages" % (by_action(total),
                                                                   len(between)),
                    {"actions": actions_of(total), "between_stages": len(between)})
        # the failing verdict -> the last weight write of the rollback
        fail_at = self.sql(s, "select min(at) from analysis_records where deployment = ? and "
                              "verdict = 'FAIL'", (failing,))[0][0]
        if not fail_at:
            raise RuntimeError("no FAIL verdict recorded for deployment %d" % failing)
        after = [c for c in calls if c["start"] >= fail_at / 1e3]
        writes = [i for i, c in enumerate(after) if c["op"] in ("ModifyRule", "ModifyListener")]
        if not writes:
            raise RuntimeError("no weight write after the failing verdict")
        restore = after[:writes[-1] + 1]
        w = waves(restore)
        self.figure("ECS rollback round trips", len(w), "round trips",
                    "<= %d" % ECS_TARGETS["waves"], len(w) <= ECS_TARGETS["waves"],
                    "failing verdict -> weights restored, as sequential waves of calls in "
                    "aws_fake.py's log (calls whose start/end overlap are one wave): %s; %.0f ms "
                    "with each ELBv2 call held 50 ms"
                    % (" -> ".join("+".join(c["op"] for c in wave) for wave in w),
                       (restore[-1]["end"] - fail_at / 1e3) * 1e3),
                    {"waves": [[c["op"] for c in wave] for wave in w],
                     "ms": (restore[-1]["end"] - fail_at / 1e3) * 1e3})

    # ---- idle footprint -----------------------------------------------------------------------

    def idle_serve(self, name, n):
        """A kanaria serve with n apps of the generated repository deployed (quick syncs)."""
        repo = os.path.join(self.tmp, name)
        base = free_port_block(n)
        self.genrepo(repo, n, "--server", self.server, "--port-base", str(base), "--replicas", "1")
        s = self.serve_start(name, "  - {name: mono, url: \"file://%s\", branch: main, "
                             "pollInterval: 1m}\n" % repo)
        self.log("waiting for %d quick syncs" % n)
        self.wait_sql(s, "select count(*) from deployments where status in "
                      "('SUCCESS', 'FAILURE')", until=lambda rows: rows and rows[0][0] == n,
                      timeout=300, every=0.5)
        ok = self.sql(s, "select count(*) from deployments where status = 'SUCCESS'")[0][0]
        if ok != n:
            raise RuntimeError("%d of %d quick syncs succeeded; see %s" % (ok, n, s["log"]))
        return s

    def bench_idle(self):
        # past the 5 s after which kanaria serve gives the memory of a burst back
        settle = 6 if self.quick else 10
        idle_s = 5 if self.quick else 60
        small, n = 10, 100
        s = self.idle_serve("idle-small", small)
        time.sleep(settle)
        mem_small = smaps_rollup(s["proc"].pid)
        self.serve_stop(s)
        s = self.idle_serve("idle", n)
        time.sleep(settle)
        mem = smaps_rollup(s["proc"].pid)
        ticks0, t0 = cpu_ticks(s["proc"].pid), time.monotonic()
        time.sleep(idle_s)
        ticks1, t1 = cpu_ticks(s["proc"].pid), time.monotonic()
        self.serve_stop(s)
        rss, pss = mem["Rss"] / 1024, mem["Pss"] / 1024
        self.figure("idle footprint RSS, %d apps deployed" % n, rss, "MB", "< 20 MB", rss < 20,
                    "Rss of /proc/PID/smaps_rollup of kanaria serve with %d apps deployed (1 "
                    "instance each, pollInterval 1m), after %ds idle; anonymous %.1f MB, file "
                    "pages %.1f MB" % (n, settle, mem["Anonymous"] / 1024,
                                       (mem["Rss"] - mem["Anonymous"]) / 1024),
                    {"smaps_rollup_kib": mem})
        self.figure("idle footprint PSS, %d apps deployed" % n, pss, "MB", "-", None,
                    "Pss of smaps_rollup: shared library pages counted once per process that "
                    "maps them (Pss_Anon %.1f MB, Pss_File %.1f MB)"
                    % (mem.get("Pss_Anon", 0) / 1024, mem.get("Pss_File", 0) / 1024))
        growth = (mem["Rss"] - mem_small["Rss"]) / (n - small)
        anon_growth = (mem["Anonymous"] - mem_small["Anonymous"]) / (n - small)
        self.figure("RSS growth per deployed app", growth, "KB", "< 20 KB", growth < 20,
                    "(Rss with %d apps - Rss with %d apps) / %d, both on the local platform "
                    "(anonymous memory: %.1f KB per app): kanaria serve has no fake platform, so "
                    "1,000 apps (1,000 processes) are not measured"
                    % (n, small, n - small, anon_growth),
                    {"rss_small_kib": mem_small["Rss"], "anon_small_kib": mem_small["Anonymous"],
                     "anon_growth_kib": anon_growth})
        hz = os.sysconf("SC_CLK_TCK")
        cpu = (ticks1 - ticks0) / hz / (t1 - t0) * 100
        self.figure("idle CPU, %d apps deployed" % n, cpu, "%", "< 0.5% of one core", cpu < 0.5,
                    "utime+stime of /proc/PID/stat over %ds idle (%d ticks of 1/%d s)"
                    % (idle_s, ticks1 - ticks0, hz),
                    {"ticks": ticks1 - ticks0, "seconds": t1 - t0})

    # ---- the engine under load, in process ---------------------------------------------------

    def bench_throughput(self):
        """Reactions of 100 apps deploying canaries at once, and RSS per deployed app, with the
        real engine on the fake platform (kanaria_bench_engine)."""
        driver = find_tool(self.build, "kanaria_bench_engine")
        apps, solo = 100, 1 if self.quick else 5
        small, large = (25, 50) if self.quick else (100, 1000)
        res = self.engine_driver(driver, "reactions", apps, solo)
        for kind, what in (("approval", "the approval recorded (with its event, then the engine "
                                        "kicked, as the API's approve does) -> the "
                                        "PRIMARY_ROLLOUT's apply at the provider"),
                           ("rollback", "the failing answer handed to the ANALYSIS -> the "
                                        "rollback's first operation at the provider")):
            xs, alone = res["load"][kind + "_ms"], res["solo"][kind + "_ms"]
            busy, running = res["load"]["busy_calls" + ("" if kind == "approval" else
                                                        "_rollback")], \
                res["load"]["running" + ("" if kind == "approval" else "_rollback")]
            p50, top, floor = median(xs), max(xs), median(alone)
            over = sum(1 for x in xs if x > 100)
            load = ("%d apps at once; when it began, a median of %d other deployments ran and %d "
                    "platform operations were in flight" % (apps, median(running) - 1,
                                                            median(busy)))
            self.figure("%s reaction, %d apps at once, p50" % (kind, apps), p50, "ms", "-", None,
                        "%s; %s" % (what, load), {"samples_ms": xs, "busy_calls": busy,
                                                  "running": running})
            slow = xs.index(top)
            cpu, vcsw, ivcsw = (res["load"][kind + suffix][slow]
                                for suffix in ("_cpu_ms", "_vcsw", "_ivcsw"))
            self.figure("%s reaction, %d apps at once, max" % (kind, apps), top, "ms",
                        "max < 100 ms", top < 100,
                        "the slowest of the %d apps: %.1f ms of it on the loop thread's CPU, "
                        "which blocked %d times (waiting in the kernel: the disk, as the store "
                        "syncs) and was preempted %d times" % (apps, cpu, vcsw, ivcsw),
                        {"cpu_ms": cpu, "voluntary_switches": int(vcsw),
                         "involuntary_switches": int(ivcsw)})
            self.figure("%s reactions over 100 ms, %d apps at once" % (kind, apps), over,
                        "of %d" % apps, "0", over == 0, "count of the apps whose reaction took "
                        "over 100 ms")
            self.figure("%s reaction, %d apps at once / one app alone, p50" % (kind, apps),
                        p50 / floor if floor > 0 else None, "x", "-", None,
                        "against the same reaction of one app deploying alone, in the same "
                        "process before the others (median of %d: %.2f ms)" % (solo, floor),
                        {"floor_ms": floor, "floor_samples_ms": alone})
        mem = self.engine_driver(driver, "memory", small, large)
        growth = (mem["rss_large_kib"] - mem["rss_small_kib"]) / (large - small)
        anon = (mem["anon_large_kib"] - mem["anon_small_kib"]) / (large - small)
        for n, key in ((small, "small"), (large, "large")):
            self.figure("engine RSS, %d apps deployed (fake platform)" % n,
                        mem["rss_%s_kib" % key] / 1024, "MB", "-", None,
                        "Rss of /proc/self/smaps_rollup of kanaria_bench_engine: the engine, "
                        "store and platform front end, every app's canary deployed and idle "
                        "(anonymous %.1f MB)" % (mem["anon_%s_kib" % key] / 1024))
        self.figure("RSS growth per deployed app, fake platform (%d -> %d apps)" % (small, large),
                    growth, "KB", "< 20 KB", growth < 20,
                    "(Rss with %d apps - Rss with %d) / %d, in one process deploying %d at a "
                    "time (anonymous memory: %.1f KB per app); %.1f s"
                    % (large, small, large - small, small, anon, mem["seconds"]),
                    {"anon_per_app_kib": anon, **mem})

    def engine_driver(self, driver, mode, x, y):
        log = os.path.join(self.tmp, "engine-%s.log" % mode)
        with open(log, "w") as err:
            out = subprocess.run([driver, mode, str(x), str(y)], stdout=subprocess.PIPE,
                                 stderr=err, text=True, timeout=900)
        if out.returncode != 0:
            with open(log) as f:
                tail = f.read()[-2000:]
            raise RuntimeError("kanaria_bench_engine %s: exit %d: %s" % (mode, out.returncode,
                                                                       tail))
        return json.loads(out.stdout)

    def cleanup(self):
        for s in self.serves:
            try:
                self.serve_stop(s)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                self.log("cleanup: %s" % e)
        for p in self.fakes:
            if p.poll() is None:
                p.terminate()
                p.wait()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- plain functions ------------------------------------------------------------------------


def find_tool(build, name):
    """A helper built by tests/CMakeLists.txt: in BUILD/tests, or BUILD itself."""
    for path in (os.path.join(build, "tests", name), os.path.join(build, name)):
        if os.access(path, os.X_OK):
            return path
    raise SystemExit("bench: %s is not built in %s" % (name, build))


def median(xs):
    return statistics.median(xs)


def fmt(v):
    if isinstance(v, float):
        return "%.2f" % v if v < 10 else "%.0f" % v
    return str(v)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port_block(n):
    """The first of n consecutive loopback ports that nothing listens on now."""
    for attempt in range(50):
        base = 20000 + (os.getpid() * 13 + attempt * 211) % 9000
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of %d free ports" % n)


def stop_local_platform(data):
    """Stop the app instances and the HAProxy a kanaria with this dataDir started."""
    for root, _, names in os.walk(os.path.join(data, "local")):
        for name in names:
            path = os.path.join(root, name)
            pid = None
            if name.endswith(".json") and name != "apps.json":
                try:
                    with open(path) as f:
                        pid = int(json.load(f).get("pid") or 0) or None
                except (ValueError, OSError, AttributeError):
                    pid = None
            elif name == "haproxy.pid":
                try:
                    with open(path) as f:
                        pid = int(f.readline())
                except (ValueError, OSError):
                    pid = None
            if pid:
                for target in (-pid, pid):
                    try:
                        os.kill(target, 15)
                    except OSError:
                        pass


def canary_weight(sock_path, backend):
    """Sum of the weights of the backend's canary servers (0 when there are none)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(b"show servers state %s\n" % backend.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    total = 0
    for line in data.decode().splitlines():
        f = line.split()
        # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...
        if len(f) > 7 and f[3].startswith("canary-"):
            total += int(f[7])
    return total


def log_time(path, pattern):
    """Wall time (seconds) of the first log line matching pattern, or None."""
    rx = re.compile(pattern)
    with open(path) as f:
        for line in f:
            if rx.search(line):
                m = re.search(r"time=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", line)
                if not m:
                    return None
                y, mo, d, h, mi, sec, ms = (int(x) for x in m.groups())
                return calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) + ms / 1000.0
    return None


def fake_call(url, what, body=None):
    """GET (or POST body to) /_fake/WHAT of the Kubernetes fake; its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + "/_fake/" + what, data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


def kube_verb(r):
    """GET, LIST, WATCH, PATCH, DELETE, ... of a request in the fake's log."""
    if r["method"] != "GET":
        return r["method"]
    if str((r.get("query") or {}).get("watch", "")).lower() in ("1", "true", "t"):
        return "WATCH"
    parts = [p for p in r["path"].split("/") if p]
    # /api/v1/... or /apis/GROUP/VERSION/...; discovery itself is a GET
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else None
    if not rest:
        return "GET"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    return "LIST" if len(rest) == 1 else "GET"


def kube_watched(log):
    """(path, labelSelector) of every WATCH in the log: a LIST of one of them is an informer's."""
    return {(r["path"], (r.get("query") or {}).get("labelSelector")) for r in log
            if kube_verb(r) == "WATCH"}


def kube_stage_counts(log, stages):
    """Requests per stage by verb (a request belongs to the stage running when it started; a
    watch counts once, when it opens) and the polling ones: a LIST that no WATCH of the same
    collection and selector follows (not an informer's), and a GET repeated inside a stage."""
    out, polled = [], []
    watched = kube_watched(log)
    for idx, name, started, finished in stages:
        verbs, seen, sent = {}, set(), []
        for r in log:
            if not started / 1e3 <= r["start"] <= (finished or 1e13) / 1e3:
                continue
            v = kube_verb(r)
            verbs[v] = verbs.get(v, 0) + 1
            sent.append("%s %s %s" % (v, r["path"], r["status"]))
            key = (r["path"], json.dumps(r.get("query"), sort_keys=True))
            if (v == "LIST" and (r["path"], (r.get("query") or {}).get("labelSelector"))
                    not in watched) or (v == "GET" and key in seen):
                polled.append("%s %s %s" % (name, v, r["path"]))
            seen.add(key)
        out.append({"stage": idx, "name": name, "verbs": verbs, "requests": sent})
    return out, polled


def kube_rollback_waves(log, verdict):
    """Sequential round trips from the verdict (Unix seconds) to the end of the first route
    write after it that gives the canary no weight: requests whose times overlap are one wave;
    watches, open throughout, are not round trips. (waves, the write's end) or (0, None)."""
    restored = None
    for r in sorted(log, key=lambda r: r["start"]):
        if r["start"] < verdict or r["method"] != "PATCH" or "/httproutes/" not in r["path"]:
            continue
        refs = [b for rule in ((r.get("body") or {}).get("spec") or {}).get("rules") or []
                for b in rule.get("backendRefs") or []]
        if not any(b.get("name", "").endswith("-canary") and b.get("weight", 1) > 0
                   for b in refs):
            restored = r
            break
    if restored is None:
        return 0, None
    waves, wave_end = 0, None
    for r in sorted(log, key=lambda r: r["start"]):
        if r["start"] < verdict or r["start"] > restored["start"] or kube_verb(r) == "WATCH":
            continue
        if wave_end is None or r["start"] > wave_end:
            waves += 1
            wave_end = r["end"] or r["start"]
        else:
            wave_end = max(wave_end, r["end"] or r["start"])
    return waves, restored["end"] or restored["start"]


def smaps_rollup(pid):
    """The kB fields of /proc/PID/smaps_rollup (Rss, Pss, Pss_Anon, Pss_File, Anonymous...)."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def cpu_ticks(pid):
    """utime + stime of /proc/PID/stat, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command: state is field 3, utime 14 and stime 15 (1-based)
    return int(fields[11]) + int(fields[12])


# ---- the ecs part's world ---------------------------------------------------------------------

ELB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
TG_BLUE = ELB_ARN + "targetgroup/shop-blue/0a1b2c3d4e5f6071"
TG_GREEN = ELB_ARN + "targetgroup/shop-green/0a1b2c3d4e5f6072"
TG_CART = ELB_ARN + "targetgroup/cart/0a1b2c3d4e5f6073"
LISTENER = ELB_ARN + "listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"


def forward_pair(blue, green):
    return [{"Type": "forward", "Order": 1, "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": TG_BLUE, "Weight": blue},
        {"TargetGroupArn": TG_GREEN, "Weight": green}]}}]


# As examples/ecs: an ALB whose listener's default action, a path rule and a host-header rule
# forward to the pair, and a rule of another service.
ECS_WORLD = {
    "accountId": "123456789012", "region": "us-east-1",
    "users": [{"accessKeyId": "AKIDBENCHECS", "secretAccessKey": "bench/secret/key/for/aws_fake"}],
    "clusters": ["kanaria-bench"],
    "loadBalancers": [{"name": "web", "arn": ELB_ARN + "loadbalancer/app/web/50dc6c495c0c9188"}],
    "targetGroups": [{"name": "shop-blue", "arn": TG_BLUE, "loadBalancers": ["web"]},
                     {"name": "shop-green", "arn": TG_GREEN, "loadBalancers": ["web"]},
                     {"name": "cart", "arn": TG_CART, "loadBalancers": ["web"]}],
    "listeners": [{"loadBalancer": "web", "arn": LISTENER, "port": 80,
                   "defaultActions": forward_pair(100, 0)}],
    "rules": [{"listener": LISTENER, "priority": 10, "actions": forward_pair(100, 0),
               "conditions": [{"Field": "path-pattern", "Values": ["/shop/*"]}]},
              {"listener": LISTENER, "priority": 20, "actions": forward_pair(100, 0),
               "conditions": [{"Field": "host-header", "Values": ["shop.example.com"]}]},
              {"listener": LISTENER, "priority": 30,
               "actions": [{"Type": "forward", "Order": 1, "TargetGroupArn": TG_CART}],
               "conditions": [{"Field": "path-pattern", "Values": ["/cart/*"]}]}],
}

# The regression targets (README, Benchmarks): the figures measured once the weight writes went
# out together and later walks of the rules took one round trip, so that a change adding a call
# or a round trip is seen.
ECS_TARGETS = {"CANARY_ROLLOUT": 5, "TRAFFIC_ROUTING 10%": 6, "TRAFFIC_ROUTING 50%": 6,
               "PRIMARY_ROLLOUT": 7, "TRAFFIC_ROUTING primary 100%": 6, "CANARY_CLEAN": 6,
               "ROLLBACK": 13, "total": 36, "waves": 2}


def write_ecs_app(repo, version, probe_url):
    d = os.path.join(repo, "shop")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "taskdef.yaml"), "w") as f:
        f.write("family: shop\nnetworkMode: awsvpc\nrequiresCompatibilities: [FARGATE]\n"
                "cpu: \"256\"\nmemory: \"512\"\ncontainerDefinitions:\n"
                "  - name: web\n    image: public.ecr.aws/nginx/nginx:1.%d\n    essential: true\n"
                "    memoryReservation: 256\n    portMappings:\n"
                "      - {containerPort: 80, protocol: tcp}\n" % version)
    with open(os.path.join(d, "servicedef.yaml"), "w") as f:
        f.write("cluster: kanaria-bench\nserviceName: shop\ndesiredCount: 10\n"
                "launchType: FARGATE\ndeploymentController: {type: EXTERNAL}\n"
                "networkConfiguration:\n  awsvpcConfiguration:\n"
                "    subnets: [subnet-0a1b2c3d4e5f60001]\n    assignPublicIp: DISABLED\n")
    tg = ("      %s:\n        targetGroupArn: %s\n        containerName: web\n"
          "        containerPort: 80\n")
    with open(os.path.join(d, "app.kanaria.yaml"), "w") as f:
        f.write("apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: shop}\n"
                "spec:\n  platform: aws\n  ecs:\n    taskDefinitionFile: taskdef.yaml\n"
                "    serviceDefinitionFile: servicedef.yaml\n    targetGroups:\n"
                + tg % ("primary", TG_BLUE) + tg % ("canary", TG_GREEN) +
                "  pipeline:\n"
                "    - name: CANARY_ROLLOUT\n      with: {replicas: \"20%%\"}\n"
                "    - name: TRAFFIC_ROUTING\n      with: {canary: 10}\n"
                "    - name: TRAFFIC_ROUTING\n      with: {canary: 50}\n"
                "    - name: ANALYSIS\n      with:\n        duration: 1s\n        http:\n"
                "          - {name: probe, url: \"%s\", interval: 1s, timeout: 500ms,"
                " inconclusiveLimit: 0}\n"
                "    - name: PRIMARY_ROLLOUT\n"
                "    - name: TRAFFIC_ROUTING\n      with: {primary: 100}\n"
                "    - name: CANARY_CLEAN\n" % probe_url)


def control(url, path, body=None):
    """A control endpoint of aws_fake.py: GET without a body, POST with one."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def actions_of(calls):
    out = {}
    for c in calls:
        out[c["op"]] = out.get(c["op"], 0) + 1
    return out


def by_action(calls):
    return ", ".join("%s %d" % kv for kv in sorted(actions_of(calls).items(),
                                                    key=lambda kv: (-kv[1], kv[0]))) or "none"


def waves(calls):
    """Calls in start order, cut where one starts after every call before it has answered: each
    part is one round trip of calls in flight together."""
    out, end = [], None
    for c in sorted(calls, key=lambda c: c["start"]):
        if end is None or c["start"] >= end:
            out.append([])
            end = c["end"]
        out[-1].append(c)
        end = max(end, c["end"])
    return out


class ProbeServer:
    """The ANALYSIS stage's HTTP check: 200, or 500 once failing is set."""

    def __init__(self):
        import http.server
        import threading
        outer = self
        self.failing = False

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(500 if outer.failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/healthz" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "load": os.getloadavg()[0]}


def table(figs, mach, quick):
    lines = ["machine: %d cores, %s, Linux %s, load %.2f at start%s"
             % (mach["nproc"], mach["cpu"], mach["kernel"], mach["load"],
                " (--quick: 100 apps, 1 run each; no target applies)" if quick else ""),
             "",
             "| figure | value | target | verdict |",
             "| --- | --- | --- | --- |"]
    for f in figs:
        value = "not measured" if f["value"] is None else "%s %s" % (fmt(f["value"]), f["unit"])
        verdict = "-" if f["meets"] is None or quick else ("meets" if f["meets"] else "MISSES")
        lines.append("| %s | %s | %s | %s |" % (f["figure"], value, f["target"], verdict))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 apps, one run each (smoke test)")
    p.add_argument("--build", default=os.path.join(SOURCE, "build-release"))
    p.add_argument("--json", default=os.path.join(SOURCE, "build", "bench.json"))
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--only", help="comma-separated parts: plan,fetch,live,idle,throughput,ecs,"
                   "kube")
    args = p.parse_args()
    b = Bench(args)
    mach = machine()
    parts = [("plan", b.bench_plan), ("fetch", b.bench_fetch), ("live", b.bench_live),
             ("idle", b.bench_idle), ("throughput", b.bench_throughput), ("ecs", b.bench_ecs),
             ("kube", b.bench_kube)]
    failed = []
    try:
        for name, fn in parts:
            if args.only and name not in args.only.split(","):
                continue
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - one part failing still prints the others
                b.log("%s: not measured: %s" % (name, e))
                failed.append(name)
    finally:
        b.cleanup()
    print(table(b.figures, mach, args.quick))
    if failed:
        print("\nnot measured: " + ", ".join(failed))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": mach, "quick": args.quick, "figures": b.figures,
                   "not_measured": failed}, f, indent=2)
        f.write("\n")
    print("\nwritten to %s" % args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
