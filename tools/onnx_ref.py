#!/usr/bin/python3
"""A small numpy interpreter for the ONNX ops bitplan reads and writes: the
PyTorch-free reference used at development time to check the files
bp_onnx_save writes (and torch's own exports) against torch's outputs.

    /usr/bin/python3 tools/onnx_ref.py MODEL.onnx X.bin Y.bin [rtol]
    /usr/bin/python3 tools/onnx_ref.py --check LIST   (lines "MODEL X Y"; adds onnx.checker)

X.bin: float32 NCHW samples for the model input (batch inferred from the
size); Y.bin: expected float32 outputs. Prints the largest difference and
exits non-zero when any element differs by more than rtol*|y| + 1e-5.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def pad_window(x, k, s, p, d, ceil, fill):
    """Windows of x (N,C,H,W) as (N,C,OH,OW,kh,kw) after padding with fill."""
    n, c, h, w = x.shape
    outs = []
    for ax, size in ((0, h), (1, w)):
        span = size + p[ax] + p[ax + 2] - ((k[ax] - 1) * d[ax] + 1)
        o = (-(-span // s[ax]) if ceil else span // s[ax]) + 1
        if ceil and (o - 1) * s[ax] >= size + p[ax]:
            o -= 1
        outs.append(o)
    oh, ow = outs
    # enough padding at the end for the last window
    eh = max(0, (oh - 1) * s[0] + (k[0] - 1) * d[0] + 1 - (h + p[0]))
    ew = max(0, (ow - 1) * s[1] + (k[1] - 1) * d[1] + 1 - (w + p[1]))
    xp = np.full((n, c, h + p[0] + eh, w + p[1] + ew), fill, dtype=np.float64)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    win = np.empty((n, c, oh, ow, k[0], k[1]))
    for i in range(k[0]):
        for j in range(k[1]):
            r0, c0 = i * d[0], j * d[1]
            win[..., i, j] = xp[:, :, r0:r0 + s[0] * (oh - 1) + 1:s[0], c0:c0 + s[1] * (ow - 1) + 1:s[1]]
    return win, (h, w)


def explicit_pads(a, shape, k):
    """pads attribute, or the ones auto_pad SAME_UPPER/SAME_LOWER/VALID implies:
    output ceil(in/stride); the odd pixel goes at the end for SAME_UPPER."""
    mode = a.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode in ("NOTSET", ""):
        return list(a.get("pads", [0] * 4))
    if mode == "VALID":
        return [0] * 4
    s, d = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
    begin, end = [], []
    for ax in range(2):
        out = -(-shape[2 + ax] // s[ax])
        total = max(0, (out - 1) * s[ax] + (k[ax] - 1) * d[ax] + 1 - shape[2 + ax])
        lo = total // 2 if mode == "SAME_UPPER" else total - total // 2
        begin.append(lo)
        end.append(total - lo)
    return begin + end


def run(model, x):
    g = model.graph
    env = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i.name for i in g.input if i.name not in env]
    env[inputs[0]] = x.astype(np.float64)
    for node in g.node:
        a = attrs(node)
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            xx, w = ins[0], ins[1].astype(np.float64)
            grp = a.get("group", 1)
            k = w.shape[2:]
            win, _ = pad_window(xx, k, a.get("strides", [1, 1]), explicit_pads(a, xx.shape, k),
                                a.get("dilations", [1, 1]), False, 0.0)
            cg, og = xx.shape[1] // grp, w.shape[0] // grp
            ys = [np.einsum("nchwij,ocij->nohw", win[:, q * cg:(q + 1) * cg], w[q * og:(q + 1) * og])
                  for q in range(grp)]
            y = np.concatenate(ys, axis=1)
            if len(ins) > 2 and ins[2] is not None:
                y = y + ins[2].reshape(1, -1, 1, 1)
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            A = A.T if a.get("transA", 0) else A
            B = B.T if a.get("transB", 0) else B
            y = a.get("alpha", 1.0) * A @ B
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = ins[0] @ ins[1]
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "BatchNormalization":
            xx, s, b, m, v = ins
            sh = (1, -1) + (1,) * (xx.ndim - 2)
            y = (xx - m.reshape(sh)) / np.sqrt(v.reshape(sh) + a.get("epsilon", 1e-5)) * s.reshape(sh) + b.reshape(sh)
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min", -np.inf)
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max", np.inf)
            y = np.clip(ins[0], lo, hi)
        elif op in ("MaxPool", "AveragePool"):
            k = a["kernel_shape"]
            p = explicit_pads(a, ins[0].shape, k)
            mx = op == "MaxPool"
            win, (h, w) = pad_window(ins[0], k, a.get("strides", [1, 1]), p, a.get("dilations", [1, 1]),
                                     a.get("ceil_mode", 0), -np.inf if mx else np.nan)
            if mx:
                y = win.max(axis=(4, 5))
            elif a.get("count_include_pad", 0):
                # padding counts, the ceil_mode overhang past the padding does not
                ones, _ = pad_window(np.ones((1, 1, h, w)), k, a.get("strides", [1, 1]), p,
                                     [1, 1], a.get("ceil_mode", 0), np.nan)
                inside, _ = pad_window(np.ones((1, 1, h + p[0] + p[2], w + p[1] + p[3])), k,
                                       a.get("strides", [1, 1]), [0] * 4, [1, 1], a.get("ceil_mode", 0), np.nan)
                cnt = np.nansum(inside, axis=(4, 5))
                y = np.nansum(win, axis=(4, 5)) / cnt
            else:
                y = np.nanmean(win, axis=(4, 5))
        elif op == "GlobalAveragePool":
            y = ins[0].mean(axis=tuple(range(2, ins[0].ndim)), keepdims=True)
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Reshape":
            shp = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(ins[1].tolist())]
            y = ins[0].reshape(shp)
        elif op == "Identity":
            y = ins[0]
        elif op == "Constant":
            y = numpy_helper.to_array(a["value"])
        elif op == "Shape":
            y = np.array(ins[0].shape, dtype=np.int64)
        elif op == "Gather":
            y = np.take(ins[0], ins[1], axis=a.get("axis", 0))
        elif op == "Unsqueeze":
            axes = a["axes"] if "axes" in a else ins[1].tolist()
            y = ins[0]
            for ax in sorted(axes):
                y = np.expand_dims(y, ax)
        elif op == "Slice":
            if "starts" in a:  # opset < 10: attributes
                st, en, ax = a["starts"], a["ends"], a.get("axes")
                sp = None
            else:
                st, en = ins[1].tolist(), ins[2].tolist()
                ax = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else None
                sp = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else None
            ax = ax if ax is not None else list(range(len(st)))
            sl = [slice(None)] * ins[0].ndim
            for k, axis in enumerate(ax):
                sl[axis] = slice(st[k], en[k], sp[k] if sp else 1)
            y = ins[0][tuple(sl)]
        elif op == "Squeeze":
            axes = a.get("axes") or (ins[1].tolist() if len(ins) > 1 and ins[1] is not None else None)
            y = np.squeeze(ins[0], axis=tuple(axes) if axes else None)
        elif op == "Transpose":
            y = np.transpose(ins[0], a.get("perm"))
        elif op == "Concat":
            y = np.concatenate(ins, axis=a.get("axis", 0))
        elif op == "Cast":
            y = ins[0].astype(np.int64 if a["to"] == 7 else np.float64)
        else:
            raise SystemExit("onnx_ref: op %s not implemented" % op)
        env[node.output[0]] = y
    return env[g.output[0].name]


def check_one(model_path, x_path, y_path, rtol, checker):
    model = onnx.load(model_path)
    if checker:
        onnx.checker.check_model(model, full_check=True)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    x = np.fromfile(x_path, dtype="<f4").reshape([-1] + dims)
    want = np.fromfile(y_path, dtype="<f4").reshape(x.shape[0], -1)
    got = run(model, x).reshape(x.shape[0], -1)
    err = np.abs(got - want)
    bad = err > rtol * np.abs(want) + 1e-5
    print("%s: %sbatch %d, max |diff| %.3g, %d of %d outside tolerance" % (
        model_path, "checker ok, " if checker else "", x.shape[0], err.max(), bad.sum(), bad.size))
    return not bad.any()


def main():
    """onnx_ref.py MODEL X Y [rtol]   or   onnx_ref.py --check LIST
    LIST has lines "MODEL X Y"; --check also runs onnx.checker (full_check)."""
    if sys.argv[1] == "--check":
        ok = True
        with open(sys.argv[2]) as f:
            for line in f:
                if line.strip():
                    m, xp, yp = line.split()
                    try:
                        ok &= check_one(m, xp, yp, 1e-4, True)
                    except Exception as e:  # the checker's verdict, or a file we cannot run
                        print("%s: FAILED: %s" % (m, e))
                        ok = False
        return 0 if ok else 1
    rtol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
    return 0 if check_one(sys.argv[1], sys.argv[2], sys.argv[3], rtol, False) else 1


if __name__ == "__main__":
    sys.exit(main())
