#!/usr/bin/env python3
"""Writes X.npy (float32, N x 1 x 28 x 28, pseudo-random) and Y.npy (int64
labels) with a NaN in sample BAD, without numpy (tools/mpi-check: a rank whose
shard holds the NaN fails inside a Hessian-vector product).

usage: mpi_nan_npy.py X.npy Y.npy N BAD
"""
import random
import struct
import sys


def save(path, descr, shape, payload):
    head = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % d for d in shape))
    pad = 64 - (10 + len(head) + 1) % 64
    head = head + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + payload)


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    n, bad = int(argv[3]), int(argv[4])
    rng = random.Random(0)
    per = 28 * 28
    vals = [rng.gauss(0, 1) for _ in range(n * per)]
    vals[bad * per + 3 * 28 + 3] = float("nan")
    save(argv[1], "<f4", (n, 1, 28, 28), struct.pack("<%df" % len(vals), *vals))
    save(argv[2], "<i8", (n,), struct.pack("<%dq" % n, *[i % 10 for i in range(n)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
