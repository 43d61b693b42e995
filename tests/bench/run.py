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

    def serve_start(self, name, repos, users=""):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        api = free_port()
        ports = 30000 + (os.getpid() * 7 + len(self.serves) * 997) % 20000
        cfg = os.path.join(d, "kanaria.yaml")
        with open(cfg, "w") as f:
            f.write("dataDir: %s/data\nlisten: 127.0.0.1:%d\n" % (d, api))
            f.write("platforms:\n  - name: local\n    type: local\n"
                    "    haproxy: {metricsBind: \"127.0.0.1:%d\"}\n"
                    "    ports: {min: %d, max: %d}\n" % (free_port(), ports, ports + 400))
            f.write("repositories:\n" + repos + users)
        logf = open(os.path.join(d, "log"), "w")
        p = subprocess.Popen([self.kanaria, "serve", "-c", cfg], stdout=logf, stderr=logf)
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

    def cleanup(self):
        for s in self.serves:
            try:
                self.serve_stop(s)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                self.log("cleanup: %s" % e)
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
    p.add_argument("--only", help="comma-separated parts: plan,fetch,live,idle")
    args = p.parse_args()
    b = Bench(args)
    mach = machine()
    parts = [("plan", b.bench_plan), ("fetch", b.bench_fetch), ("live", b.bench_live),
             ("idle", b.bench_idle)]
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
