#!/usr/bin/python3
"""Idle RSS and restart latency of one supervise: ours (target/release) vs Debian's
daemontools (/usr/bin/supervise), measured in the same run.

Restart latency = time from SIGKILL of the service's process to a new pid in the status file
(what svstat reads). The supervisors run side by side and are killed in turn, 0.2 s apart,
in an order that alternates from round to round; each kill comes at least 1.5 s after the
previous start of the same service, so the once-a-second restart guard of both
implementations is not what is measured.
"""
import os, signal, statistics, struct, subprocess, sys, tempfile, time

ROUNDS = int(os.environ.get("ROUNDS", "40"))
# Arguments: NAME=PATH …; the last one is the reference (daemontools).
progs = [a.split("=", 1) for a in sys.argv[1:]]


def status_pid(d):
    try:
        with open(os.path.join(d, "supervise", "status"), "rb") as f:
            b = f.read()
    except OSError:
        return 0
    return struct.unpack("<I", b[12:16])[0] if len(b) == 18 else 0


def rss_kb(pid):
    """VmRSS and the private part (Private_Clean + Private_Dirty), in kB."""
    rss = priv = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Rss":
                rss = int(v.split()[0])
            elif k in ("Private_Clean", "Private_Dirty"):
                priv += int(v.split()[0])
    return rss, priv


def start(prog, t, i):
    d = os.path.join(t, f"svc{i}")
    os.mkdir(d)
    with open(os.path.join(d, "run"), "w") as f:
        f.write("#!/bin/sh\nexec sleep 100000\n")
    os.chmod(os.path.join(d, "run"), 0o755)
    sup = subprocess.Popen([prog, d], stdin=subprocess.DEVNULL, start_new_session=True)
    return d, sup


def kill_and_wait(d):
    """SIGKILL the service in d; milliseconds until a new pid is in the status file."""
    old = status_pid(d)
    t0 = time.perf_counter()
    os.kill(old, signal.SIGKILL)
    while True:
        p = status_pid(d)
        if p and p != old:
            return (time.perf_counter() - t0) * 1000
        time.sleep(0.0002)


# All supervisors run side by side and are killed in turn (the order alternating from round
# to round), so that a change of the machine's load affects all of them alike.
res = {}
with tempfile.TemporaryDirectory() as t:
    running = []
    try:
        for i, (name, prog) in enumerate(progs):
            running.append((name,) + start(prog, t, i))
        end = time.time() + 10
        for _, d, _ in running:
            while status_pid(d) == 0 and time.time() < end:
                time.sleep(0.01)
        time.sleep(2)
        for name, _, sup in running:
            res[name] = (rss_kb(sup.pid), [])
        for r in range(ROUNDS):
            time.sleep(1.5)
            order = running if r % 2 == 0 else running[::-1]
            for name, d, _ in order:
                res[name][1].append(kill_and_wait(d))
                time.sleep(0.2)
    finally:
        for _, d, sup in running:
            p = status_pid(d)
            os.killpg(sup.pid, signal.SIGKILL)
            if p:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            sup.wait()

print("| supervisor | idle RSS (kB) | private (kB) | restart latency median (ms) | p90 (ms) | min (ms) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, ((rss, priv), lat) in res.items():
    lat = sorted(lat)
    print(f"| {name} | {rss} | {priv} | {statistics.median(lat):.2f} | "
          f"{lat[max(int(len(lat) * 0.9) - 1, 0)]:.2f} | {lat[0]:.2f} |")
ref_name = progs[-1][0]
(ref_rss, _), ref_lat = res[ref_name]
print()
for name, ((rss, _), lat) in list(res.items())[:-1]:
    # the kills of one round are 0.2 s apart: their ratio is the least disturbed by load
    paired = statistics.median(a / b for a, b in zip(lat, ref_lat))
    print(f"- {name}: RSS {rss / ref_rss:.2f}x {ref_name}, median restart latency "
          f"{statistics.median(lat) / statistics.median(ref_lat):.2f}x, median of the "
          f"per-round ratios {paired:.2f}x ({ROUNDS} kills each)")
