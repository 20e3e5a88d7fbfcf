#!/usr/bin/env python3
"""agents_firstbyte.py URL - the time from an assignment to the first byte of
its answer, from the agents' histogram vapora_agents_first_byte_seconds (one
worker's /metrics: each answer comes from one worker; the fullest one of a
few reads is used). Prints p50 and p99, interpolated within buckets."""
import re, sys, urllib.request

def read(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    buckets = {}
    for m in re.finditer(r'^vapora_agents_first_byte_seconds_bucket\{[^}]*le="([^"]+)"\} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets[le] = buckets.get(le, 0) + float(m.group(2))
    return sorted(buckets.items())

def quantile(b, q):
    total = b[-1][1]
    want, lo, below = q * total, 0.0, 0.0
    for le, n in b:
        if n >= want:
            if le == float("inf") or n == below:
                return le
            return lo + (le - lo) * (want - below) / (n - below)
        lo, below = le, n
    return float("inf")

best = max((read(sys.argv[1]) for _ in range(6)), key=lambda b: b[-1][1] if b else 0)
if not best or best[-1][1] == 0:
    print("assign -> first byte: no observation")
    sys.exit(0)
print("assign -> first byte of the answer (one worker, %d runs): p50 %.2f ms, p99 %.2f ms"
      % (best[-1][1], 1000 * quantile(best, 0.5), 1000 * quantile(best, 0.99)))
