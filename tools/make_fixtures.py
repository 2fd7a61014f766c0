#!/usr/bin/python3
"""Makes the ONNX fixtures tests/test_onnx.c reads (tests/fixtures/onnx/).

Run with Debian's interpreter (torch + onnx are Debian packages):
    /usr/bin/python3 tools/make_fixtures.py

For each tiny model it writes <name>.onnx exported by torch.onnx.export, the
input x.bin (3 samples, float32 little-endian, NCHW) and torch's output
<name>.out.bin (3 x classes), and <arch>.layers: one line per Conv/Linear
module with the shapes and MACs computed here from the torch modules (forward
hooks), independently of bitplan. The torch and onnx versions are stamped in
fixtures.txt. Everything is tiny (KBs) and deterministic (fixed seeds).
"""
import hashlib
import io
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_ref  # noqa: E402  (the numpy reference interpreter beside this script)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx")


class SmallCNN(nn.Module):
    """Conv-BN-ReLU, depthwise conv + BN + ReLU6 (Clip), 1x1 conv with bias,
    residual Add, MaxPool, strided conv, AvgPool with padding/ceil_mode,
    x.view(x.size(0), -1) (the Shape/Gather/Unsqueeze/Concat chain), Linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        z = F.relu6(self.bn2(self.dw(y)))
        y = F.relu(y + self.pw(z))
        y = self.pool(y)
        y = F.relu(self.conv2(y))
        y = self.avg(y)
        y = y.view(y.size(0), -1)
        return self.fc(y)


class TinyGAP(nn.Module):
    """Strided conv + BN + ReLU6, depthwise with dilation, global average pool,
    torch.flatten (Flatten node) and two Linears."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 12, 3, padding=2, dilation=2, groups=6)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x):
        y = F.relu6(self.bn(self.conv(x)))
        y = F.relu(self.dw(y))
        y = torch.flatten(self.gap(y), 1)
        return self.fc2(F.relu(self.fc1(y)))


class WithSigmoid(nn.Module):
    """Uses an op bitplan does not support (Sigmoid): for the error test."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.sigmoid(self.conv(x)).flatten(1)


def randomize_bn(m):
    # Non-trivial running statistics so that a BN mistake shows in the output.
    g = torch.Generator().manual_seed(7)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.2)


def layer_rows(m, x):
    """(name, cout, cin, kh, kw, stride, group, in_h, in_w, out_h, out_w, params, macs)
    per Conv2d/Linear, from forward hooks on one sample."""
    rows, hooks = [], []
    for name, mod in m.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            def hook(mod, inp, out, name=name):
                if isinstance(mod, nn.Conv2d):
                    _, cin, ih, iw = inp[0].shape
                    _, cout, oh, ow = out.shape
                    kh, kw = mod.kernel_size
                    fan = (cin // mod.groups) * kh * kw
                    rows.append((name, cout, cin, kh, kw, mod.stride[0], mod.groups, ih, iw, oh, ow,
                                 mod.weight.numel(), cout * oh * ow * fan))
                else:
                    rows.append((name, mod.out_features, mod.in_features, 1, 1, 1, 1, 1, 1, 1, 1,
                                 mod.weight.numel(), mod.in_features * mod.out_features))
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        m(x[:1])
    for h in hooks:
        h.remove()
    return rows


def export(m, x, path, opset, **kw):
    buf = io.BytesIO()
    torch.onnx.export(m, x[:1], buf, opset_version=opset, input_names=["input"],
                      output_names=["logits"], **kw)
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    with open(path, "wb") as f:
        f.write(data)
    ops = sorted({n.op_type for n in onnx.load_from_string(data).graph.node})
    return ops


def edge_models(x):
    """Hand-built models (onnx.helper) for what torch does not write: float16 /
    double / float_data initializers, Clip bounds as attributes (opset 9),
    auto_pad SAME_LOWER/UPPER, the folded Shape/Gather/Slice/Squeeze/Concat
    chain, Gemm alpha/beta/transB, MatMul; plus broken files for error tests.
    Expected outputs come from tools/onnx_ref.py (numpy), not from torch."""
    rng = np.random.default_rng(3)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    made = []

    def save(name, graph, opset, ref=True):
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="make_fixtures")
        m.ir_version = 7
        path = os.path.join(OUT, name + ".onnx")
        with open(path, "wb") as f:
            f.write(m.SerializeToString())
        if ref:
            onnx.checker.check_model(m)
            onnx_ref.run(m, x).astype("<f4").tofile(os.path.join(OUT, name + ".out.bin"))
        made.append(name + ".onnx")

    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 10, 10])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    w1 = f32(4, 3, 3, 3)
    w1_16 = numpy_helper.from_array(w1.astype(np.float16), "w1")  # float16 weights
    b1 = numpy_helper.from_array(f32(4).astype(np.float64), "b1")  # double bias
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [4, 4, 2, 2], f32(4, 4, 2, 2).ravel().tolist())  # float_data
    fcw = numpy_helper.from_array(f32(5, 4 * 3 * 3), "fc.weight")
    fcb = numpy_helper.from_array(f32(5), "fc.bias")
    mm = numpy_helper.from_array(f32(5, 3), "mm.weight")
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv_same_lower",
                         auto_pad="SAME_LOWER", strides=[2, 2]),
        helper.make_node("Clip", ["c1"], ["r1"], name="clip_attr", min=-0.5, max=1.5),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv_same_upper", auto_pad="SAME_UPPER"),
        helper.make_node("MaxPool", ["c2"], ["p2"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        # the shape chain: Shape -> Gather(0) -> Unsqueeze, Shape -> Slice(1:) -> ...
        helper.make_node("Shape", ["p2"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n"], ["n0"], name="unsq", axes=[0]),
        helper.make_node("Unsqueeze", ["n0"], ["n01"], name="unsq2", axes=[1]),
        helper.make_node("Squeeze", ["n01"], ["n1"], name="squeeze", axes=[1]),
        helper.make_node("Slice", ["s"], ["chw"], name="slice", starts=[1], ends=[4], axes=[0]),
        helper.make_node("Constant", [], ["neg1"], name="const",
                         value=helper.make_tensor("v", TensorProto.INT64, [1], [-1])),
        helper.make_node("Concat", ["n1", "neg1"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["p2", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["g"], name="fc", transB=1,
                         alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["g"], ["g1"], name="relu"),
        # x.view(-1, 5): a literal -1 first with one sample behind it
        helper.make_node("Reshape", ["g1", "minus1_5"], ["gr"], name="view_minus1"),
        helper.make_node("MatMul", ["gr", "mm.weight"], ["y"], name="mm"),
    ]
    g = helper.make_graph(nodes, "edge", [inp], [out],
                          [w1_16, b1, w2, fcw, fcb, mm, i64("zero", 0), i64("minus1_5", [-1, 5])])
    save("edge_opset9", g, 9)

    # errors: Conv reading a weight nobody defines
    g = helper.make_graph([helper.make_node("Conv", ["x", "nowhere"], ["y"], name="lonely")],
                          "err", [inp], [out], [])
    save("err_missing_init", g, 13, ref=False)
    # an int64 tensor where Conv needs float weights
    g = helper.make_graph([helper.make_node("Conv", ["x", "wi"], ["y"], name="intconv")], "err",
                          [inp], [out], [i64("wi", np.ones((2, 3, 1, 1)))])
    save("err_wrong_type", g, 13, ref=False)
    # a Reshape that moves the batch: (N,3,10,10) -> (3, N*100)
    g = helper.make_graph([helper.make_node("Reshape", ["x", "t"], ["y"], name="mixer")], "err",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 10, 10])], [out],
                          [i64("t", [3, -1])])
    save("err_batch_move", g, 13, ref=False)
    # two real inputs: bitplan models take one
    g = helper.make_graph([helper.make_node("Add", ["x", "x2"], ["y"], name="two")], "err",
                          [inp, helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 3, 10, 10])],
                          [out], [])
    save("err_two_inputs", g, 13, ref=False)
    return made


def main():
    os.makedirs(OUT, exist_ok=True)
    stamp = ["torch %s, onnx %s, numpy %s" % (torch.__version__, onnx.__version__, np.__version__)]
    torch.manual_seed(0)
    x = torch.randn(3, 3, 10, 10)
    x.numpy().astype("<f4").tofile(os.path.join(OUT, "x.bin"))

    models = {"cnn": SmallCNN(), "gap": TinyGAP()}
    for arch, m in models.items():
        randomize_bn(m)
        m.eval()
        with torch.no_grad():
            y = m(x)
        y.numpy().astype("<f4").tofile(os.path.join(OUT, arch + ".out.bin"))
        with open(os.path.join(OUT, arch + ".layers"), "w") as f:
            f.write("# name cout cin kh kw stride group in_h in_w out_h out_w params macs\n")
            for r in layer_rows(m, x):
                f.write(" ".join(str(v) for v in r) + "\n")
        P = torch.onnx.TrainingMode.PRESERVE
        variants = [
            # default eval export: the exporter folds BN into the preceding Conv
            # (with or without do_constant_folding)
            ("fused_op11", 11, dict()),
            ("fused_op13", 13, dict()),
            # TrainingMode.PRESERVE on a model in eval() keeps BatchNormalization
            # nodes (inference form); without constant folding the view's
            # shape chain (Constant/Unsqueeze/Concat/Cast) stays in the file
            ("bn_op11", 11, dict(training=P, do_constant_folding=False)),
            ("bn_op13", 13, dict(training=P)),
            ("bn_op17", 17, dict(training=P, do_constant_folding=False)),
            # older exporters list every initializer as a graph input too
            ("keepinit_op11", 11, dict(training=P, keep_initializers_as_inputs=True)),
            # symbolic batch: the view's Shape/Gather chain cannot be folded by torch
            ("dyn_op13", 13, dict(training=P, do_constant_folding=False,
                                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})),
        ]
        for tag, opset, kw in variants:
            name = "%s_%s.onnx" % (arch, tag)
            try:
                ops = export(m, x, os.path.join(OUT, name), opset, **kw)
            except Exception as e:  # an exporter that lacks an opset: say so, go on
                stamp.append("%s: not exported (%s)" % (name, e))
                continue
            stamp.append("%s: %s" % (name, " ".join(ops)))
    # BN in training form (5 outputs): loading it must fail with a clear message
    ops = export(models["cnn"], x, os.path.join(OUT, "cnn_train_op13.onnx"), 13,
                 training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    models["cnn"].eval()
    stamp.append("cnn_train_op13.onnx: %s" % " ".join(ops))
    m = WithSigmoid().eval()
    ops = export(m, x, os.path.join(OUT, "sigmoid_op13.onnx"), 13)
    stamp.append("sigmoid_op13.onnx: %s" % " ".join(ops))
    for name in edge_models(x.numpy()):
        stamp.append("%s: hand-built with onnx.helper" % name)
    # SHA-256 of every model, from hashlib (bitplan records its own in g->sha256)
    with open(os.path.join(OUT, "fixtures.sha256"), "w") as f:
        for name in sorted(os.listdir(OUT)):
            if name.endswith(".onnx"):
                with open(os.path.join(OUT, name), "rb") as h:
                    f.write("%s  %s\n" % (hashlib.sha256(h.read()).hexdigest(), name))
    with open(os.path.join(OUT, "fixtures.txt"), "w") as f:
        f.write("\n".join(stamp) + "\n")
    print("\n".join(stamp))


if __name__ == "__main__":
    sys.exit(main())
