#!/usr/bin/env python3
"""agents_fast.py - compare-agents' work from a client that is not the bound.

  agents_fast.py burst BACKEND PASSWORD N ASSIGN_BIN [SUPERVISOR_PID]
      N tasks made (as compare-agents makes them), then assigned to the
      developers by ASSIGN_BIN (bench/agents_assign.c: 16 keep-alive
      connections from one C thread) and the clock stops when the last is in
      review (polled as compare-agents polls). Prints tasks/s; with
      SUPERVISOR_PID, also the CPU each process of its tree spent in the
      burst, per task, from /proc (by process name; workers summed).
  agents_fast.py ceiling BACKEND N
      compare-agents' own driver against GET /health: requests, one Session,
      16 threads, N calls. Prints requests/s: what that driver can reach
      whatever the service behind it."""
import concurrent.futures as cf, http.client, json, os, subprocess, sys, tempfile, threading, time

_local = threading.local()


def call(backend, method, path, body=None, token=None):
    if not hasattr(_local, "c"):
        host, port = backend.split(":")
        _local.c = http.client.HTTPConnection(host, int(port), timeout=60)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    _local.c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = _local.c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def stat(pid):
    """(name, fields after the name) of /proc/PID/stat, or None once it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.index("(") + 1:s.rindex(")")], s[s.rindex(")") + 2:].split()


def tree(root):
    """{pid: name} of root and every descendant."""
    kids = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        st = stat(p)
        if st:
            kids.setdefault(int(st[1][1]), []).append((int(p), st[0]))
    out, todo = {}, [root]
    while todo:
        for c, name in kids.get(todo.pop(), []):
            out[c] = name
            todo.append(c)
    return out


def cpu(pids):
    """{name: clock ticks of user + system}, summed over pids."""
    by = {}
    for p, name in pids.items():
        st = stat(p)
        if st:
            by[name] = by.get(name, 0) + int(st[1][11]) + int(st[1][12])
    return by


def wait_review(backend, tok, project, n, limit_s=600):
    end = time.time() + limit_s
    while time.time() < end:
        done, cursor = 0, None
        while True:
            q = "/api/v1/tasks?project_id=%s&status=review&limit=500" % project
            st, j = call(backend, "GET", q + ("&cursor=%s" % cursor if cursor else ""), None, tok)
            done += len(j["items"])
            cursor = j.get("next_cursor")
            if not cursor:
                break
        if done >= n:
            return time.perf_counter()
        time.sleep(0.05)
    return None


def burst(backend, password, n, assign_bin, sv=None):
    tok = call(backend, "POST", "/api/v1/auth/login", {"username": "admin", "password": password})[1]["access_token"]
    project = call(backend, "POST", "/api/v1/projects", {"name": "fast %f" % time.time()}, tok)[1]["id"]

    def one(i):
        return call(backend, "POST", "/api/v1/projects/%s/tasks" % project, {
            "title": "Implement endpoint %d" % i, "description": "Add the handler and its tests.",
            "type": "feature"}, tok)[1]["id"]
    with cf.ThreadPoolExecutor(16) as ex:
        ids = list(ex.map(one, range(n)))
    with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
        f.write("\n".join(ids) + "\n")
    pids = tree(sv) if sv else {}
    time.sleep(0.5)  # what making the tasks left behind settles
    c0 = cpu(pids)
    t0 = time.perf_counter()
    out = subprocess.run([assign_bin, backend.split(":")[1], tok, f.name, "16", "developer"],
                         capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode != 0:
        print("(agents_assign failed: %s)" % out.stderr.strip())
        return 1
    assign_s, bad = out.stdout.split()
    t1 = wait_review(backend, tok, project, n) if bad == "0" else None
    c1 = cpu(pids)
    if not t1:
        print("fast client: did not finish (%s assigns refused)" % bad)
        return 1
    print("fast client  %9.1f tasks/s  (%d tasks, %.2f s; its assign phase %s s)"
          % (n / (t1 - t0), n, t1 - t0, assign_s))
    hz = os.sysconf("SC_CLK_TCK")
    tot = 0.0
    for name in sorted(c1, key=lambda k: c0.get(k, 0) - c1[k]):
        ms = (c1[name] - c0.get(name, 0)) * 1000.0 / hz / n
        tot += ms
        if ms > 0:
            print("  cpu %-20s %.3f ms per task" % (name, ms))
    if pids:
        print("  cpu %-20s %.3f ms per task" % ("(all of the suite)", tot))
    return 0


def ceiling(backend, n):
    import requests
    s = requests.Session()
    url = "http://%s/health" % backend
    s.get(url)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda _: s.get(url).status_code, range(n)))
    dt = time.perf_counter() - t0
    print("compare-agents' driver alone (requests, 16 threads, one Session) on GET /health: "
          "%.0f requests/s%s" % (n / dt, "" if all(c == 200 for c in codes) else " (some failed)"))
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "burst" and len(a) in (5, 6):
        sys.exit(burst(a[1], a[2], int(a[3]), a[4], int(a[5]) if len(a) == 6 else None))
    if a and a[0] == "ceiling" and len(a) == 3:
        sys.exit(ceiling(a[1], int(a[2])))
    sys.exit(__doc__)
