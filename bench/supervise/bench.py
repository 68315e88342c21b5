#!/usr/bin/python3
"""Idle RSS and restart latency of one supervise: ours (target/release) vs Debian's
daemontools (/usr/bin/supervise), measured in the same run.

Restart latency = time from SIGKILL of the service's process to a new pid in the status file
(what svstat reads). Each kill waits 1.5 s after the previous start, so the once-a-second
restart guard of both implementations is not what is measured.
"""
import os, signal, statistics, struct, subprocess, sys, tempfile, time

ROUNDS = int(os.environ.get("ROUNDS", "20"))
ours = sys.argv[1]
theirs = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/supervise"


def status_pid(d):
    try:
        with open(os.path.join(d, "supervise", "status"), "rb") as f:
            b = f.read()
    except OSError:
        return 0
    return struct.unpack("<I", b[12:16])[0] if len(b) == 18 else 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


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
for name, prog in (("rqmail supervise", ours), ("daemontools supervise", theirs)):
    res[name] = measure(prog)

print("| supervisor | idle RSS (kB) | restart latency median (ms) | p90 (ms) | min (ms) |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, (rss, lat) in res.items():
    lat.sort()
    print(f"| {name} | {rss} | {statistics.median(lat):.2f} | {lat[int(len(lat)*0.9)-1]:.2f} | {lat[0]:.2f} |")
o, t = res["rqmail supervise"], res["daemontools supervise"]
print()
print(f"RSS ratio (ours/daemontools): {o[0]/t[0]:.2f}; "
      f"median latency ratio: {statistics.median(o[1])/statistics.median(t[1]):.2f} "
      f"({ROUNDS} kills each)")
