#!/usr/bin/env python3
"""agents_inflight.py BACKEND FAKE ADMIN PASSWORD TOKEN_FILE N - N runs in flight at once.

Makes N tasks, assigns them all to role tester (agent bench-slow, whose
provider, the fake, streams each answer over ~30 s), waits until the fake
holds N streams, reads the peak RSS of every agents worker (VmHWM), then
waits for every task to reach review and counts the runs that did not."""
import concurrent.futures as cf, http.client, json, os, sys, time

backend, fake, admin, password, token_file, n = sys.argv[1:7]
n = int(n)

def call(host, method, path, body=None, token=None):
    c = http.client.HTTPConnection(*host.split(":"), timeout=60)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)

st, login = call(backend, "POST", "/api/v1/auth/login", {"username": "admin", "password": password})
tok = login["access_token"]
st, proj = call(backend, "POST", "/api/v1/projects", {"name": "inflight %d" % time.time()}, tok)
pid = proj["id"]
with cf.ThreadPoolExecutor(32) as ex:
    ids = list(ex.map(lambda i: call(backend, "POST", "/api/v1/projects/%s/tasks" % pid,
                                     {"title": "Test case %d" % i}, tok)[1]["id"], range(n)))
t0 = time.time()
with cf.ThreadPoolExecutor(32) as ex:
    codes = list(ex.map(lambda i: call(backend, "POST", "/api/v1/tasks/%s/assign" % i,
                                       {"role": "tester"}, tok)[0], ids))
bad = sum(1 for c in codes if c != 202)

def workers():
    h = {}
    if os.path.exists(token_file):
        h["Authorization"] = "Bearer " + open(token_file).read().strip()
    c = http.client.HTTPConnection(*admin.split(":"), timeout=10)
    c.request("GET", "/status", headers=h)
    s = json.loads(c.getresponse().read())
    return [w["pid"] for sv in s["services"] if sv["name"] == "agents" for w in sv["workers"]]

def rss(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0

peak = 0
deadline = time.time() + 120
while time.time() < deadline:
    c = http.client.HTTPConnection(*fake.split(":"), timeout=10)
    c.request("GET", "/s/slow/_fake/stats")
    stats = json.loads(c.getresponse().read())
    peak = max(peak, stats["active_streams"])
    if stats["active_streams"] >= n:
        break
    time.sleep(0.5)
held = time.time() - t0
pids = workers()
print("assign answers not 202: %d; streams open at once: %d of %d (after %.1f s)" % (bad, peak, n, held))
for p in pids:
    print("agents worker %d: RSS now %.1f MB, peak %.1f MB" % (p, rss(p, "VmRSS"), rss(p, "VmHWM")))
left = set(ids)
deadline = time.time() + 180
while left and time.time() < deadline:
    st, page = call(backend, "GET", "/api/v1/tasks?project_id=%s&status=review&limit=500" % pid, None, tok)
    done = set()
    while True:
        done |= {t["id"] for t in page["items"]}
        if not page.get("next_cursor"):
            break
        st, page = call(backend, "GET", "/api/v1/tasks?project_id=%s&status=review&limit=500&cursor=%s"
                        % (pid, page["next_cursor"]), None, tok)
    left -= done
    time.sleep(1)
print("runs that did not end in review: %d of %d" % (len(left), n))
for p in pids:
    print("agents worker %d: peak RSS %.1f MB" % (p, rss(p, "VmHWM")))
