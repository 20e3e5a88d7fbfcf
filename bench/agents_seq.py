#!/usr/bin/env python3
"""agents_seq.py BACKEND PASSWORD N - N assignments one after another.

Logs in as admin, makes a project and N tasks, then assigns each to the
developers and waits until it is in review before the next: the latency of
an assignment on a suite with nothing else to do (the agents' histogram of
assign -> first byte is read afterwards by agents_firstbyte.py). Prints the
assign -> review time (p50, p99) seen from outside."""
import http.client, json, sys, time

backend, password, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(*backend.split(":"), timeout=30)


def call(method, path, body=None, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    conn.request(method, path, json.dumps(body) if body is not None else None, h)
    r = conn.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


tok = call("POST", "/api/v1/auth/login", {"username": "admin", "password": password})[1]["access_token"]
pid = call("POST", "/api/v1/projects", {"name": "seq %d" % time.time()}, tok)[1]["id"]
ids = [call("POST", "/api/v1/projects/%s/tasks" % pid, {"title": "Seq %d" % i}, tok)[1]["id"]
       for i in range(n)]
took, late = [], 0
for tid in ids:
    t0 = time.perf_counter()
    st, _ = call("POST", "/api/v1/tasks/%s/assign" % tid, {"role": "developer"}, tok)
    if st != 202:
        late += 1
        continue
    deadline = t0 + 10
    while time.perf_counter() < deadline:
        if call("GET", "/api/v1/tasks/%s" % tid, None, tok)[1].get("status") == "review":
            took.append(time.perf_counter() - t0)
            break
        time.sleep(0.002)
    else:
        late += 1
took.sort()
if took:
    print("one at a time: assign -> task in review (polled every 2 ms), %d runs: p50 %.2f ms, "
          "p99 %.2f ms; not done within 10 s: %d"
          % (len(took), 1000 * took[len(took) // 2], 1000 * took[min(len(took) - 1, int(len(took) * 0.99))],
             late))
