#!/usr/bin/env python3
"""streams.py ROUTER ADMIN N TOKEN_FILE - opens N streaming chat completions
at once through the router (model slow-model), reads each to the end, and
samples the router workers' RSS (from the supervisor's /status, with the
admin token in TOKEN_FILE, and /proc) while they are all open. Prints
errors, duration and the peak RSS per worker."""
import asyncio, json, sys, time, urllib.request

router, admin, n, token_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = router.split(":")
body = json.dumps({"model": "slow-model", "stream": True,
                   "messages": [{"role": "user", "content": "go"}]}).encode()
req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body

def worker_pids():
    token = open(token_file).read().strip()
    rq = urllib.request.Request("http://%s/status" % admin,
                                headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(rq) as r:
        st = json.load(r)
    for s in st["services"]:
        if s["name"] == "llm-router":
            return [w["pid"] for w in s["workers"]]
    return []

def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

async def one(results):
    try:
        r, w = await asyncio.open_connection(host, int(port))
        w.write(req)
        await w.drain()
        data = b""
        while True:
            chunk = await r.read(65536)
            if not chunk:
                break
            data += chunk
            if b"data: [DONE]" in data and data.endswith(b"0\r\n\r\n"):
                break
        w.close()
        ok = data.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in data and b'"error"' not in data
        results.append(ok)
    except Exception as e:  # a refused or reset connection is an error
        results.append(False)

async def main():
    pids = worker_pids()
    results, peak = [], {p: 0 for p in pids}
    t0 = time.time()
    tasks = [asyncio.create_task(one(results)) for _ in range(n)]
    while not all(t.done() for t in tasks):
        for p in pids:
            try:
                peak[p] = max(peak[p], rss(p))
            except OSError:
                pass
        await asyncio.sleep(0.25)
    dt = time.time() - t0
    bad = results.count(False)
    print("streams %d, completed ok %d, errors %d, wall %.1f s" % (n, n - bad, bad, dt))
    for p, v in peak.items():
        print("worker %d peak RSS %.1f MB" % (p, v / 1e6))

import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
asyncio.run(main())
