#!/usr/bin/env python3
"""Compares two sensitivity files number by number (docs/MPI.md).

usage: mpi_compare.py A.json B.json [--rtol 1e-6]

Every number at the same place must agree within rtol relative to the larger
magnitude (numbers both below 1e-12 in magnitude count as equal); strings,
booleans and the shape of the document must be identical. Prints the largest
relative difference per kind of field and exits 1 on any mismatch.
"""
import json
import sys


def walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a) != sorted(b):
            out["errors"].append("%s: keys differ: %s vs %s" % (path, sorted(a), sorted(b)))
            return
        for k in a:
            walk(a[k], b[k], path + "." + k, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out["errors"].append("%s: lengths %d and %d" % (path, len(a), len(b)))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s[%d]" % (path, i), out)
    elif isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        if a != b:
            out["errors"].append("%s: %r vs %r" % (path, a, b))
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        m = max(abs(a), abs(b))
        rel = 0.0 if m < 1e-12 else abs(a - b) / m
        key = path.split(".")[-1].split("[")[0]
        out["max"][key] = max(out["max"].get(key, 0.0), rel)
        out["count"] += 1
        if rel > out["rtol"]:
            out["errors"].append("%s: %r vs %r (relative difference %.3g)" % (path, a, b, rel))
    else:
        out["errors"].append("%s: types %s and %s" % (path, type(a).__name__, type(b).__name__))


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    rtol = 1e-6
    if "--rtol" in argv:
        rtol = float(argv[argv.index("--rtol") + 1])
        args.remove(argv[argv.index("--rtol") + 1])
    if len(args) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    a, b = (json.load(open(p)) for p in args)
    out = {"errors": [], "max": {}, "count": 0, "rtol": rtol}
    walk(a, b, "", out)
    for k in sorted(out["max"]):
        print("  %-14s max relative difference %.3g" % (k, out["max"][k]))
    for e in out["errors"][:20]:
        print("MISMATCH " + e)
    print("%d numbers compared, %d mismatches (rtol %g)" % (out["count"], len(out["errors"]), rtol))
    return 1 if out["errors"] or out["count"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
