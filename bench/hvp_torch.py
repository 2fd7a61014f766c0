#!/usr/bin/python3
"""bench/hvp_torch.py — PyTorch peer of bench/hvp.c (run with Debian's
/usr/bin/python3: python3-torch, python3-onnx).

Loads the ONNX model's weights with python3-onnx into an equivalent PyTorch
module (a small interpreter of the ONNX graph over torch.nn.functional, with
every Conv/Gemm/MatMul weight a parameter), takes the same first N samples of
Fashion-MNIST train (same normalization as bitplan), and measures:

  * seconds per gradient (forward + backward over all batches), and
  * seconds per Hessian-vector product by double backward — PyHessian's
    method: g = autograd.grad(loss, params, create_graph=True), then
    Hv = autograd.grad(g, params, v), summed over batches weighted by
    n_batch / N (the loss is a mean);
  * per-layer Hutchinson traces from P joint Rademacher probes.

With --compare bitplan.json (written by `bench/hvp --probes P --json`), it
prints bitplan vs torch seconds per HVP (target: bitplan at least 2x faster),
the loss and vᵀHv of a fixed vector per layer against torch in float64 (must
agree to float rounding: same model, same data; the difference is measured
against |v_i|·|(Hv)_i|, and torch's own float32 error is printed beside it), and whether the traces agree within their standard
errors (|t_b − t_t| <= 3·sqrt(se_b² + se_t²)).
"""
import argparse
import ctypes
import gzip
import json
import statistics
import struct
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

FMNIST = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # BP_FMNIST_MEAN / BP_FMNIST_STD in core/data.h


def read_idx(path, n):
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        nd = magic & 0xFF
        dims = struct.unpack(">" + "I" * nd, f.read(4 * nd))
        count = min(n, dims[0])
        per = int(np.prod(dims[1:])) if nd > 1 else 1
        data = np.frombuffer(f.read(count * per), dtype=np.uint8)
    return data.reshape((count,) + tuple(dims[1:]))


def load_data(n):
    x = read_idx(f"{FMNIST}/train-images-idx3-ubyte.gz", n).astype(np.float32)
    y = read_idx(f"{FMNIST}/train-labels-idx1-ubyte.gz", n).astype(np.int64)
    x = (x / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    return torch.from_numpy(x[:, None, :, :].copy()), torch.from_numpy(y.copy())


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxModule(torch.nn.Module):
    """Runs an ONNX graph with torch ops; Conv/Gemm/MatMul weights are the
    parameters (in node order, like bitplan's layer table)."""

    def __init__(self, path):
        super().__init__()
        m = onnx.load(path)
        self.graph = m.graph
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
        self.layer_names, self.weight_names = [], []
        self.params = torch.nn.ParameterList()
        self.pindex = {}
        for node in m.graph.node:
            if node.op_type in ("Conv", "Gemm", "MatMul") and node.input[1] in self.consts:
                w = node.input[1]
                self.pindex[w] = len(self.params)
                self.params.append(torch.nn.Parameter(self.consts[w].float().clone()))
                self.weight_names.append(w)
                name = w[: -len(".weight")] if w.endswith(".weight") else node.name
                self.layer_names.append(name)
        inits = {t.name for t in m.graph.initializer}
        self.input_name = [i.name for i in m.graph.input if i.name not in inits][0]
        self.output_name = m.graph.output[0].name

    def val(self, env, name):
        if name in self.pindex:
            return self.params[self.pindex[name]]
        if name in env:
            return env[name]
        return self.consts[name]

    def forward(self, x):
        env = {self.input_name: x}
        for node in self.graph.node:
            a = attrs(node)
            op = node.op_type
            i = [self.val(env, n) if n else None for n in node.input]
            if op == "Conv":
                pads = list(a.get("pads", [0, 0, 0, 0]))
                xin = i[0]
                if pads[0] == pads[2] and pads[1] == pads[3]:
                    pad = (pads[0], pads[1])
                else:
                    xin = F.pad(xin, (pads[1], pads[3], pads[0], pads[2]))
                    pad = (0, 0)
                y = F.conv2d(xin, i[1], i[2] if len(i) > 2 else None, stride=tuple(a.get("strides", [1, 1])),
                             padding=pad, dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))
            elif op == "BatchNormalization":
                y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], training=False, eps=a.get("epsilon", 1e-5))
            elif op == "Relu":
                y = F.relu(i[0])
            elif op == "Clip":
                lo = float(i[1]) if len(i) > 1 and i[1] is not None else a.get("min", -float("inf"))
                hi = float(i[2]) if len(i) > 2 and i[2] is not None else a.get("max", float("inf"))
                # ReLU6 as PyTorch models write it (nn.ReLU6 = hardtanh): the
                # same kink convention as bitplan's Clip; torch.clamp's
                # backward would pass the gradient at the bounds
                y = F.hardtanh(i[0], lo, hi) if np.isfinite(lo) and np.isfinite(hi) else torch.clamp(i[0], lo, hi)
            elif op == "MaxPool":
                p = list(a.get("pads", [0, 0, 0, 0]))
                y = F.max_pool2d(i[0], tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                                 (p[0], p[1]), ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "AveragePool":
                p = list(a.get("pads", [0, 0, 0, 0]))
                y = F.avg_pool2d(i[0], tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                                 (p[0], p[1]), ceil_mode=bool(a.get("ceil_mode", 0)),
                                 count_include_pad=bool(a.get("count_include_pad", 0)))
            elif op == "GlobalAveragePool":
                y = i[0].mean(dim=(2, 3), keepdim=True)
            elif op == "Flatten":
                ax = a.get("axis", 1)
                y = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
            elif op == "Reshape":
                shape = [int(s) for s in i[1].tolist()]
                shape = [i[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
                y = i[0].reshape(shape)
            elif op == "Gemm":
                A = i[0].t() if a.get("transA", 0) else i[0]
                B = i[1].t() if a.get("transB", 0) else i[1]
                y = a.get("alpha", 1.0) * (A @ B)
                if len(i) > 2 and i[2] is not None:
                    y = y + a.get("beta", 1.0) * i[2]
            elif op == "MatMul":
                y = i[0] @ i[1]
            elif op == "Add":
                y = i[0] + i[1]
            elif op in ("Identity", "Dropout"):
                y = i[0]
            else:
                raise SystemExit(f"hvp_torch.py: op {op} (node {node.name}) is not mapped")
            env[node.output[0]] = y
        return env[self.output_name]


def batches(x, y, batch):
    for s in range(0, x.shape[0], batch):
        yield x[s:s + batch], y[s:s + batch]


def gradient(model, x, y, batch):
    n = x.shape[0]
    gs = [torch.zeros_like(p) for p in model.params]
    for xb, yb in batches(x, y, batch):
        loss = F.cross_entropy(model(xb), yb)
        g = torch.autograd.grad(loss, list(model.params))
        for acc, gi in zip(gs, g):
            acc.add_(gi, alpha=xb.shape[0] / n)
    return gs


def hvp(model, x, y, batch, v):
    """PyHessian's dataloader_hv_product: double backward per batch."""
    n = x.shape[0]
    params = list(model.params)
    hv = [torch.zeros_like(p) for p in params]
    loss_sum = 0.0
    for xb, yb in batches(x, y, batch):
        loss = F.cross_entropy(model(xb), yb)
        g = torch.autograd.grad(loss, params, create_graph=True)
        h = torch.autograd.grad(g, params, grad_outputs=v)
        w = xb.shape[0] / n
        loss_sum += w * float(loss)
        for acc, hi in zip(hv, h):
            acc.add_(hi, alpha=w)
    return hv, loss_sum


def timed(fns, reps):
    """Medians of wall and process CPU seconds per function, the functions
    interleaved per rep so a change of the machine's load hits them alike."""
    for fn in fns:
        fn()  # warm-up
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--blas-threads", type=int, default=0,
                    help="OpenBLAS threads (0: as --threads; -1: OpenBLAS's default)")
    ap.add_argument("--probes", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compare", help="JSON from bench/hvp --probes P --json FILE")
    o = ap.parse_args()
    ref = json.load(open(o.compare)) if o.compare else None
    if ref:
        o.samples, o.batch = ref["samples"], ref["batch"]
        o.threads = o.threads or ref.get("threads", 0)
        o.probes = o.probes or ref.get("probes", 0)
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    # Debian's torch does its matrix products in OpenBLAS (pthreads build),
    # whose pool torch.set_num_threads does not bound: at "1 thread" torch
    # then used ~1.9 cores. bench/hvp.c limits OpenBLAS to its thread count;
    # so does this peer unless --blas-threads says otherwise (-1: leave it).
    blas = o.blas_threads if o.blas_threads != 0 else o.threads
    blas_note = "OpenBLAS pool left as is"
    if blas > 0:
        try:
            ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(blas)
            blas_note = f"OpenBLAS limited to {blas} threads"
        except OSError:
            blas_note = "libopenblas.so.0 not found: BLAS threads not limited"
    torch.manual_seed(o.seed)
    model = OnnxModule(o.model)
    x, y = load_data(o.samples)
    print(f"hvp_torch: torch {torch.__version__}, {torch.get_num_threads()} threads ({blas_note}), {x.shape[0]} samples, "
          f"batch {o.batch}, {sum(p.numel() for p in model.params)} layer weights")

    # The same fixed ±1 pattern as bench/hvp.c: v[i] = ±1 from bit 31 of i·2654435761.
    sizes = [p.numel() for p in model.params]
    idx = np.arange(sum(sizes), dtype=np.uint64)
    bits = ((idx * np.uint64(2654435761)) >> np.uint64(31)) & np.uint64(1)
    flat = torch.from_numpy(np.where(bits == 1, 1.0, -1.0).astype(np.float32))
    v = [c.reshape(p.shape) for c, p in zip(torch.split(flat, sizes), model.params)]

    (sg, cg), (sh, ch) = timed([lambda: gradient(model, x, y, o.batch), lambda: hvp(model, x, y, o.batch, v)],
                               o.reps)
    hv, loss = hvp(model, x, y, o.batch, v)
    # The same product in float64 (a second copy of the model): the reference
    # for vᵀHv. Float32 double backward is itself off by up to ~5e-5 of
    # |v_i|·|(Hv)_i| on a trained ResNet-8; bitplan (float32 kernels, batches
    # summed in double) lands much closer to the float64 value.
    m64 = OnnxModule(o.model).double()
    m64.consts = {k: (t.double() if t.is_floating_point() else t) for k, t in m64.consts.items()}
    hv64, loss64 = hvp(m64, x.double(), y, o.batch, [t.double() for t in v])
    print(f"                          wall s    cpu s   (medians of {o.reps})")
    print(f"torch gradient          {sg:8.4f} {cg:8.4f}")
    print(f"torch HVP               {sh:8.4f} {ch:8.4f}   (double backward; HVP/gradient {ch / cg:.2f} cpu)")

    traces = None
    if o.probes > 0:
        gen = torch.Generator().manual_seed(o.seed)
        samples = [[] for _ in sizes]
        t0 = time.perf_counter()
        for _ in range(o.probes):
            z = [torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1 for p in model.params]
            hz, _ = hvp(model, x, y, o.batch, z)
            for k, (zi, hi) in enumerate(zip(z, hz)):
                samples[k].append(float((zi * hi).sum()))
        print(f"torch hutchinson: {o.probes} joint probes in {time.perf_counter() - t0:.2f} s")
        traces = [(statistics.mean(s), statistics.stdev(s) / len(s) ** 0.5 if len(s) > 1 else float("inf"))
                  for s in samples]

    if not ref:
        for k, name in enumerate(model.layer_names):
            t = f"  trace {traces[k][0]:12.6g} se {traces[k][1]:10.4g}" if traces else ""
            print(f"  {name:24s} vHv {float((v[k] * hv[k]).sum()):14.8g}{t}")
        return 0

    # CPU seconds are the fair figure on a shared machine (both sides run the
    # same number of threads); wall seconds are printed too.
    bh, bg = ref.get("cpu_per_hvp", ref["sec_per_hvp"]), ref.get("cpu_per_grad", ref["sec_per_grad"])
    b4 = ref.get("cpu_per_hvp4", bh)
    print(f"\nper HVP, cpu s: bitplan {bh:.4f} (4 per pass: {b4:.4f}) vs torch {ch:.4f}: bitplan is "
          f"{ch / bh:.2f}x ({ch / b4:.2f}x grouped) faster (target >= 2x: {'met' if ch / bh >= 2 else 'NOT met'})")
    bw, b4w = ref["sec_per_hvp"], ref.get("sec_per_hvp4", ref["sec_per_hvp"])
    print(f"per HVP, wall s: bitplan {bw:.4f} (4 per pass: {b4w:.4f}) vs torch {sh:.4f}: bitplan is "
          f"{sh / bw:.2f}x ({sh / b4w:.2f}x grouped) faster (target >= 2x: {'met' if sh / bw >= 2 else 'NOT met'})")
    # torch.set_num_threads bounds torch's intra-op pool only; its process CPU
    # time can exceed wall time at 1 thread (other pools), which is reported
    # here rather than hidden: cores used = CPU s / wall s.
    print(f"cores used during an HVP (cpu/wall): bitplan {bh / bw:.2f}, torch {ch / sh:.2f} "
          f"({o.threads} threads asked of both)")
    print(f"per gradient, cpu s: bitplan {bg:.4f} vs torch {cg:.4f} ({cg / bg:.2f}x)")
    ok = True
    rl = ref.get("loss")
    if rl is not None:
        rel = abs(rl - loss64) / abs(loss64)
        print(f"loss: bitplan {rl:.8g}, torch f64 {loss64:.8g}, torch f32 {loss:.8g} (bitplan vs f64: {rel:.1e})")
        ok &= rel < 1e-4
    names = {l["name"]: l for l in ref["layers"]}
    print(f"{'layer':24s} {'vHv bitplan':>14s} {'torch f64':>14s} {'bitplan':>8s} {'torch32':>8s}   "
          f"{'trace bitplan':>14s} {'trace torch':>14s} {'z':>6s}")
    agree = 0
    for k, name in enumerate(model.layer_names):
        b = names.get(name)
        if b is None:
            print(f"{name:24s} missing from {o.compare}")
            ok = False
            continue
        tv = float((v[k].double() * hv64[k]).sum())
        tv32 = float((v[k] * hv[k]).sum())
        # Relative to the Cauchy-Schwarz bound |v_i|·|(Hv)_i|, not to vᵀHv
        # itself: the sum cancels (terms of both signs), and float rounding
        # of the terms is what the sides legitimately differ by.
        bound = float(v[k].double().norm() * hv64[k].norm())
        rel = abs(b["vhv"] - tv) / max(bound, 1e-30)
        rel32 = abs(tv32 - tv) / max(bound, 1e-30)
        line = f"{name:24s} {b['vhv']:14.8g} {tv:14.8g} {rel:8.1e} {rel32:8.1e}"
        ok &= rel < 1e-5
        if traces:
            t, se = traces[k]
            z = abs(b["trace"] - t) / max((b["se"] ** 2 + se ** 2) ** 0.5, 1e-30)
            agree += z <= 3
            line += f"   {b['trace']:14.6g} {t:14.6g} {z:6.2f}"
        print(line)
    if traces:
        print(f"traces agree within 3 combined standard errors on {agree} of {len(model.layer_names)} layers")
    print("vHv and loss agree with torch float64 to float rounding (columns: difference / (|v_i|·|(Hv)_i|))"
          if ok else "MISMATCH between bitplan and torch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
