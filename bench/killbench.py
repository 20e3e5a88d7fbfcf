#!/usr/bin/env python3
"""killbench.py ADMIN SERVICE N - kill -9 to replacement ready, N times.

Each round first rolling-restarts SERVICE (so the killed worker is a healthy
one with no failure history, as in production), then SIGKILLs one running
worker and polls GET /status until a worker with a new pid is running.
Prints each time and the median, in ms. The admin API's token comes from
$VAPORA_ADMIN_TOKEN."""
import json, os, signal, statistics, sys, time, urllib.request

admin, service, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
HEADERS = {"Authorization": "Bearer " + os.environ.get("VAPORA_ADMIN_TOKEN", ""),
           "Content-Type": "application/json"}

def status():
    req = urllib.request.Request(f"http://{admin}/status", headers=HEADERS)
    with urllib.request.urlopen(req, timeout=5) as r:
        for s in json.load(r)["services"]:
            if s["name"] == service:
                return s
    raise SystemExit(f"no service {service}")

def settled(s):
    ws = s["workers"]
    return len(ws) == s["desired"] and all(w["state"] == "running" for w in ws)

def wait(pred, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        s = status()
        if pred(s):
            return s
        time.sleep(0.002)
    raise SystemExit("timed out waiting for the supervisor")

times = []
for _ in range(rounds):
    req = urllib.request.Request(f"http://{admin}/services/{service}/restart",
                                 method="POST", data=b"", headers=HEADERS)
    urllib.request.urlopen(req, timeout=5).read()
    time.sleep(0.05)
    s = wait(settled)
    s = wait(lambda s: settled(s) and len({w["generation"] for w in s["workers"]}) == 1)
    victim = s["workers"][0]["pid"]
    before = {w["pid"] for w in s["workers"]}
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait(lambda s: any(w["pid"] not in before and w["state"] == "running"
                       for w in s["workers"]))
    times.append((time.monotonic() - t0) * 1000)
print("kill -9 -> replacement ready (ms): " + " ".join(f"{t:.1f}" for t in times))
print(f"median {statistics.median(times):.1f} ms over {len(times)} kills")
