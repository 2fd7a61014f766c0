#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets under fuzz/corpus/<target>/.

Small valid (and a few nearly valid) inputs for each reader, so the fuzzer
starts from files that get past the first checks. Run from the repo root:
    python3 fuzz/make_seeds.py
ONNX and profile seeds are copies of small fixtures / shipped profiles."""
import gzip, json, os, shutil, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- sensitivity files ------------------------------------------------------
minimal = {
    "format": "bitplan-sensitivity", "version": 1,
    "layers": [
        {"name": "conv1", "op": "Conv", "params": 432, "macs": 442368, "cout": 16,
         "candidates": [{"bits": 4, "omega": 0.031}, {"bits": 8, "omega": 0.0002}]},
        {"name": "fc", "op": "Gemm", "params": 1280, "macs": 1280, "cout": 10,
         "candidates": [{"bits": 4, "omega": 0.004}, {"bits": 8, "omega": 0.00001}]}]}
put("fuzz_sens", "minimal.json", json.dumps(minimal, indent=1))
full = {
    "format": "bitplan-sensitivity", "version": 1,
    "model": {"path": "m.onnx", "sha256": "ab" * 32},
    "settings": {"seed": 1, "probe": "joint", "tolerance": 1e-3, "min_probes": 10,
                 "max_probes": 200, "samples": 64, "batch": 32, "quantizer": "maxabs",
                 "bits": [2, 4, 8]},
    "layers": [
        {"name": "conv1", "op": "Conv", "params": 144, "macs": 112896, "cout": 16, "cin": 1,
         "kh": 3, "kw": 3, "stride": 1, "group": 1, "in_h": 28, "in_w": 28, "out_h": 28,
         "out_w": 28, "fan_in": 9, "input_shape": [-1, 1, 28, 28],
         "output_shape": [-1, 16, 28, 28], "bias": True, "trace": 12.5,
         "trace_stderr": 0.25, "probes": 40, "converged": True, "eigenvalue": 3.5,
         "tie": "", "candidates": [{"bits": 2, "dw2": 1.5, "omega": 0.13},
                                   {"bits": 4, "dw2": 0.1, "omega": 0.0087},
                                   {"bits": 8, "dw2": 0.0004, "omega": 3.5e-05}]},
        {"name": "down", "op": "Conv", "params": 512, "macs": 100352, "cout": 32, "cin": 16,
         "kh": 1, "kw": 1, "stride": 2, "group": 1, "in_h": 28, "in_w": 28, "out_h": 14,
         "out_w": 14, "trace": -0.5, "trace_stderr": 0.75, "probes": 200, "converged": False,
         "eigenvalue": None, "tie": "add1",
         "act_trace": 0.5, "act_stderr": 0.1,
         "act_candidates": [{"bits": 4, "dx2": 2.0, "omega": 0.01}, {"bits": 8, "dx2": 0.01, "omega": 0.0001}],
         "candidates": [{"bits": 2, "omega": 0.2}, {"bits": 4, "omega": 0.01},
                        {"bits": 8, "omega": 0.0001}]},
        {"name": "conv2", "op": "Conv", "params": 4608, "macs": 903168, "cout": 32, "cin": 16,
         "kh": 3, "kw": 3, "stride": 2, "group": 1, "in_h": 28, "in_w": 28, "out_h": 14,
         "out_w": 14, "tie": "add1",
         "candidates": [{"bits": 2, "omega": 0.5}, {"bits": 4, "omega": 0.02},
                        {"bits": 8, "omega": 0.0003}]},
        {"name": "fc", "op": "MatMul", "params": 320, "macs": 320, "cout": 10, "cin": 32,
         "candidates": [{"bits": 2, "omega": 0.3}, {"bits": 4, "omega": 0.004},
                        {"bits": 8, "omega": 1e-05}]}],
    "top_eigenvalues": [10.5, 4.25],
    "density": {"grid": [0.0, 1.0, 2.0], "values": [0.5, 0.25, 0.25]}}
put("fuzz_sens", "full.json", json.dumps(full, indent=1))
bad = dict(minimal)
bad["layers"] = [dict(minimal["layers"][0], candidates=[{"bits": 8, "omega": 0.1}, {"bits": 4, "omega": 0.2}])]
put("fuzz_sens", "unsorted_bits.json", json.dumps(bad))

# ---- plan files --------------------------------------------------------------
put("fuzz_plan", "minimal.json",
    '{"format": "bitplan-plan", "version": 1,\n "layers": [{"name": "conv1", "wbits": 8, "abits": 8}, '
    '{"name": "fc", "wbits": 4}]}\n')
put("fuzz_plan", "bit_config.json",
    json.dumps({"format": "bitplan-plan", "version": 1, "bit_config": {"conv1": 4, "conv2": 2, "fc": 8}}))
plan = {
    "format": "bitplan-plan", "version": 1, "model": {"sha256": "cd" * 32},
    "sensitivity": "s.json", "profile": None,
    "solver": {"status": "optimal", "objective": 0.0311, "solve_seconds": 0.001},
    "totals": {"size_bytes": 1000.0, "bops": 123456.0, "latency_ms": None},
    "constraints": {"size": {"budget": 1200.0, "value": 1000.0, "slack": 200.0, "unit": "bytes"},
                    "bops": {"budget": 2e5, "value": 123456.0, "slack": 76544.0, "unit": "BOPs"}},
    "layers": [
        {"name": "conv1", "wbits": 4, "abits": 4, "size_bytes": 400.0, "bops": 100000.0,
         "latency_ms": None, "latency_fallback": False, "omega": 0.031},
        {"name": "fc", "wbits": 8, "abits": 8, "size_bytes": 600.0, "bops": 23456.0,
         "latency_ms": None, "latency_fallback": False, "omega": 0.0001}],
    "latency_fallback_layers": [],
    "bit_config": {"conv1": 4, "fc": 8}}
put("fuzz_plan", "full.json", json.dumps(plan, indent=1))

# ---- data files (images file, labels file; see fuzz/fuzz_data.c) -------------
def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 37) & 255 for i in range(n * h * w))


def idx_labels(n):
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))


def npy(descr, shape, payload):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % d for d in shape) if len(shape) == 1 else ", ".join(str(d) for d in shape))
    pad = 64 - (10 + len(hdr) + 1) % 64
    hdr = hdr + " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + payload


def data_seed(name, fmt, x, y, opts=0):
    put("fuzz_data", name, bytes([fmt | opts]) + struct.pack("<H", len(x)) + x + y)


data_seed("idx_plain", 0, idx_images(5, 4, 3), idx_labels(5))
data_seed("idx_gzip", 0, gzip.compress(idx_images(6, 2, 2), mtime=0), gzip.compress(idx_labels(6), mtime=0), 2)
data_seed("idx_offset", 0, idx_images(3, 2, 2), idx_labels(3), 8)
data_seed("npy_u8", 1, npy("|u1", (4, 3, 3), bytes(range(36))), npy("<i8", (4,), struct.pack("<4q", 1, 2, 3, 4)))
data_seed("npy_f32", 1, npy("<f4", (2, 1, 2, 2), struct.pack("<8f", *[0.5] * 8)),
          npy("<i4", (2, 1), struct.pack("<2i", 0, 9)), 4)
data_seed("npy_gzip", 1, gzip.compress(npy("<f4", (3, 4), struct.pack("<12f", *range(12))), mtime=0),
          npy("|u1", (3,), bytes([1, 2, 3])))

# ---- copies of fixtures --------------------------------------------------------
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for f in ["gap_bn_op13.onnx", "gap_fused_op11.onnx", "edge_opset9.onnx", "sigmoid_op13.onnx",
          "err_wrong_type.onnx"]:
    os.makedirs(os.path.join(ROOT, "fuzz_onnx"), exist_ok=True)
    shutil.copy(os.path.join(repo, "tests/fixtures/onnx", f), os.path.join(ROOT, "fuzz_onnx", f))
for f in ["t4-resnet18.json", "t4-roofline.json"]:
    os.makedirs(os.path.join(ROOT, "fuzz_profile"), exist_ok=True)
    shutil.copy(os.path.join(repo, "profiles", f), os.path.join(ROOT, "fuzz_profile", f))
