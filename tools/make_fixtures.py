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
import io
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

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
    with open(os.path.join(OUT, "fixtures.txt"), "w") as f:
        f.write("\n".join(stamp) + "\n")
    print("\n".join(stamp))


if __name__ == "__main__":
    sys.exit(main())
