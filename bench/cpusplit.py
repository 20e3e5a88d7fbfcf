#!/usr/bin/env python3
"""cpusplit.py ROUNDS SECS NAME=URL=PID[,PID...] ... - where the CPU goes.

For each target in turn (rounds interleaved, so machine noise falls on all
alike) runs wrk -t2 -c100 --latency for SECS against URL and reads, before
and after, the CPU time of the server's processes (all threads: user and
kernel) and of the whole machine. Prints the medians of req/s, p99, and per
request:
  server user   - the server's own code and libraries
  server kernel - the server's system calls (TCP send and receive), and
                  the softirq work done in them (on loopback, a send
                  carries the segment to the other side)
  rest          - everything else that ran: wrk and its system calls, and
                  whatever else the machine runs (on a shared machine,
                  others' work: compare the server columns, not this one)
  idle          - share of the machine's CPU time that nothing used
then, for the first target against each other one, the ratios of server
CPU per request (user + kernel) and of p99 (each round's ratio, then their
median: rounds alternate the order of the targets), and the best ratio of
requests per second it could reach if its user-space time were zero and all
else stayed equal. On a machine where the client shares the cores, that is
the ceiling no server-side code change can pass."""
import os, re, statistics, subprocess, sys, time

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: count what ran here
    return v[0] + v[1] + v[2] + v[5] + v[6]


def proc_cpu(pids):
    user = kern = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])  # utime (field 14)
        kern += int(fields[12])  # stime (field 15)
    return user, kern


def p99_ms(out):
    """wrk's 99th percentile latency, in ms."""
    v = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    return float(v.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[v.group(2)]


def run(url, pids, secs):
    m0, (u0, k0), t0 = machine_busy(), proc_cpu(pids), time.monotonic()
    out = subprocess.run(["wrk", "-t2", "-c100", f"-d{secs}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    m1, (u1, k1), t1 = machine_busy(), proc_cpu(pids), time.monotonic()
    n = int(re.search(r"(\d+) requests in", out).group(1))
    us = 1e6 / TICK / n
    ncpu = len(os.sched_getaffinity(0))
    return {"rps": n / secs, "p99": p99_ms(out), "user": (u1 - u0) * us,
            "kernel": (k1 - k0) * us,
            "rest": ((m1 - m0) - (u1 - u0) - (k1 - k0)) * us,
            "idle": 100 * (1 - (m1 - m0) / TICK / (t1 - t0) / ncpu)}


def main():
    rounds, secs = int(sys.argv[1]), int(sys.argv[2])
    targets = []
    for arg in sys.argv[3:]:
        name, url, pids = arg.split("=", 2)
        targets.append((name, url, [int(p) for p in pids.split(",") if p]))
    got = {t[0]: [] for t in targets}
    for i in range(rounds):  # every other round in reverse: none always runs first
        for name, url, pids in (targets if i % 2 == 0 else targets[::-1]):
            got[name].append(run(url, pids, secs))
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for name, rs in got.items()}
    print(f"{'':8} {'req/s':>9} {'p99 ms':>7} {'server user':>12} {'server kernel':>14}"
          f" {'rest':>9} {'total':>9} {'idle':>6}   (CPU us per request, medians)")
    for name, m in med.items():
        total = m["user"] + m["kernel"] + m["rest"]
        print(f"{name:8} {m['rps']:9.0f} {m['p99']:7.2f} {m['user']:12.2f}"
              f" {m['kernel']:14.2f} {m['rest']:9.2f} {total:9.2f} {m['idle']:5.1f}%")
    first, m = targets[0][0], med[targets[0][0]]
    for name, o in med.items():
        if name == first:
            continue
        mine = m["kernel"] + m["rest"]
        theirs = o["user"] + o["kernel"] + o["rest"]
        # Each round's ratio, of runs seconds apart, then their median: the
        # machine's state changes by the minute, and falls on both alike.
        pairs = list(zip(got[first], got[name]))
        ratios = [(a["user"] + a["kernel"]) / (b["user"] + b["kernel"]) for a, b in pairs]
        cpu = statistics.median(ratios)
        p99 = statistics.median(a["p99"] / b["p99"] for a, b in pairs)
        print(f"{first}/{name}: server CPU per request {cpu:.2f}, p99 "
              f"{p99:.2f} (medians of each round's ratio); ceiling with zero "
              f"user-space time {theirs / mine:.2f}")
        # The spread: one round's ratio moves by several percent either way.
        print(f"{'':8} CPU ratio of each round {min(ratios):.2f}-{max(ratios):.2f}, "
              f"{sum(r <= 1 for r in ratios)} of {len(ratios)} at or under 1")


if __name__ == "__main__":
    main()
