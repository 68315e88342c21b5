#!/usr/bin/python3
"""Idle RSS and restart latency of one supervise: ours (target/release) vs Debian's
daemontools (/usr/bin/supervise), measured in the same run.

Restart latency = time from SIGKILL of the service's process to a new pid in the status file
(what svstat reads). Each kill waits 1.5 s after the previous start, so the once-a-second
restart guard of both implementations is not what is measured.
"""
import os, signal, statistics, struct, subprocess, sys, tempfile, time

ROUNDS = int(os.environ.get("ROUNDS", "20"))
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


def measure(prog):
    with tempfile.TemporaryDirectory() as t:
        d = os.path.join(t, "svc")
        os.mkdir(d)
        with open(os.path.join(d, "run"), "w") as f:
            f.write("#!/bin/sh\nexec sleep 100000\n")
        os.chmod(os.path.join(d, "run"), 0o755)
        sup = subprocess.Popen([prog, d], stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            end = time.time() + 10
            while status_pid(d) == 0 and time.time() < end:
                time.sleep(0.01)
            time.sleep(2)
            rss = rss_kb(sup.pid)
            lat = []
            for _ in range(ROUNDS):
                time.sleep(1.5)
                old = status_pid(d)
                t0 = time.perf_counter()
                os.kill(old, signal.SIGKILL)
                while True:
                    p = status_pid(d)
                    if p and p != old:
                        break
                    time.sleep(0.0002)
                lat.append((time.perf_counter() - t0) * 1000)
            return rss, lat
        finally:
            p = status_pid(d)
            os.killpg(sup.pid, signal.SIGKILL)
            if p:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            sup.wait()


res = {}
for name, prog in progs:
    res[name] = measure(prog)

print("| supervisor | idle RSS (kB) | private (kB) | restart latency median (ms) | p90 (ms) | min (ms) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, ((rss, priv), lat) in res.items():
    lat.sort()
    print(f"| {name} | {rss} | {priv} | {statistics.median(lat):.2f} | "
          f"{lat[max(int(len(lat) * 0.9) - 1, 0)]:.2f} | {lat[0]:.2f} |")
ref_name = progs[-1][0]
(ref_rss, _), ref_lat = res[ref_name]
print()
for name, ((rss, _), lat) in list(res.items())[:-1]:
    print(f"- {name}: RSS {rss / ref_rss:.2f}x {ref_name}, median restart latency "
          f"{statistics.median(lat) / statistics.median(ref_lat):.2f}x ({ROUNDS} kills each)")
