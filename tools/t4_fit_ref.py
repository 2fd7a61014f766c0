#!/usr/bin/python3
"""Reference values for tests/test_latency.c (t4::interpolation_matches_numpy):
the log-log least-squares fit over the measured T4 entries, computed with numpy
straight from the HAWQ-V3 CSV (rows with one signature merged by their median,
as profiles/README.md describes), independent of bitplan's GSL code.

    /usr/bin/python3 tools/t4_fit_ref.py
"""
import csv
import numpy as np

rows = list(csv.DictReader(open("profiles/src/t4_resnet18_latency.csv")))
for bits in ("w4a4", "w8a8"):
    groups = {}
    for r in rows:
        key = (r["cin"], r["cout"], r["kernel"], r["stride"], r["in_hw"])
        groups.setdefault(key, []).append((int(r["macs_per_image"]) * int(r["batch"]),
                                           float(r["latency_ms_" + bits])))
    x = np.array([np.log(v[0][0]) for v in groups.values()])
    y = np.array([np.log(np.median([ms for _, ms in v])) for v in groups.values()])
    slope, icpt = np.polyfit(x, y, 1)
    for name, macs in (("conv1 7x7 3->64 at 224", 118013952), ("fc 512->1000", 512000)):
        print(f"{bits} {name}: {np.exp(icpt + slope * np.log(macs * 8)):.15g} ms"
              f"  (slope {slope:.6f}, {len(x)} points)")
