# watch.py APP COMMIT EXPECT SECONDS: print what kanaria does for the deployment of COMMIT, as it
# happens, until it reaches EXPECT (SUCCESS, FAILURE, or a stage name that is then running).
# Exit 0 when it did, 1 when it ended otherwise or SECONDS passed. What was printed is kept in
# a file beside this script, so that watching the same deployment again prints only what is new.
import json, os, signal, sys, time, urllib.error, urllib.request

signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

app, commit, expect, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
addr, token, t0 = os.environ["KANARIA_ADDR"], os.environ["KANARIA_TOKEN"], float(os.environ["T0"])
seen_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watch-%s.json" % commit)

def get(path):
    req = urllib.request.Request(addr + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

def out(text):
    print("    [%3ds] %s" % (time.time() - t0, text), flush=True)

def show(dep, e):
    t, m = e["type"], e["message"]
    if t in ("PLANNED", "TRIGGERED", "RUNNING", "STAGE_STARTED"):
        return
    if t == "STAGE_LOG":
        out("  " + m)
    elif t == "STAGE_FINISHED":
        out(m)
    elif t in ("SUCCESS", "FAILURE", "CANCELLED"):
        out("deployment #%d: %s" % (dep, t))
    else:
        out("%s: %s" % (t, m))

try:
    seen = set(json.load(open(seen_file)))
except (OSError, ValueError):
    seen = set()
dep = None
deadline = time.time() + secs
code = 1
while time.time() < deadline:
    try:
        if dep is None:
            for d in get("/api/v1/apps/%s/history" % app)["deployments"]:
                if d["commit"] == commit:
                    dep = d["id"]
                    if "planned" not in seen:
                        seen.add("planned")
                        out("deployment #%d: %s (%s)" % (dep, d["strategy"], d["summary"]))
        if dep is not None:
            d = get("/api/v1/deployments/%d" % dep)
            for e in sorted(d.get("events", []), key=lambda e: e["id"]):
                if e["id"] not in seen:
                    seen.add(e["id"])
                    show(dep, e)
            if d["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
                code = 0 if d["status"] == expect else 1
                break
            if any(s["name"] == expect and s["status"] == "RUNNING" for s in d.get("stages", [])):
                code = 0
                break
    except urllib.error.HTTPError as e:
        if e.code != 404:  # 404: kanaria has not fetched the app's first commit yet
            out("(the API answers %s)" % e)
    except (OSError, ValueError, KeyError) as e:
        out("(cannot read the API: %s)" % e)
    time.sleep(1)
else:
    out("timed out after %ds waiting for %s" % (secs, expect))
json.dump([x for x in seen], open(seen_file, "w"))
sys.exit(code)
