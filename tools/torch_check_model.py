#!/usr/bin/python3
"""Independent check of a model written by `bitplan train`: rebuilds the same
architecture as a PyTorch module, loads the ONNX initializers into its
state_dict by name (strict: every PyTorch parameter and buffer must be there
with the same shape, nothing left over), and evaluates float accuracy on
Fashion-MNIST read with Python's gzip. The result must match `bitplan eval`.

    /usr/bin/python3 tools/torch_check_model.py ARCH MODEL.onnx [--limit N]

Uses Debian's python3-torch and python3-onnx (run with /usr/bin/python3).
Prints: arch, samples, correct, accuracy, mean cross-entropy.
"""
import argparse
import gzip
import struct

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

MEAN, STD = 0.2860, 0.3530
FMNIST = "/usr/share/datasets/fashion-mnist"


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet8(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def conv_bn_relu6(cin, cout, k, stride, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        layers = [] if t == 1 else [conv_bn_relu6(cin, hid, 1, 1)]
        layers += [conv_bn_relu6(hid, hid, 3, stride, hid), nn.Conv2d(hid, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2Tiny(nn.Module):
    BLOCKS = [(1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 1), (4, 32, 1)]

    def __init__(self):
        super().__init__()
        feats = [conv_bn_relu6(1, 16, 3, 2)]
        c = 16
        for t, cout, s in self.BLOCKS:
            feats.append(InvertedResidual(c, cout, s, t))
            c = cout
        feats.append(conv_bn_relu6(c, 128, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(128, 10))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


ARCHS = {"lenet5": LeNet5, "resnet8": ResNet8, "mobilenetv2": MobileNetV2Tiny}


def load_idx(stem, limit):
    with gzip.open(f"{FMNIST}/{stem}-images-idx3-ubyte.gz") as f:
        magic, n, h, w = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803
        x = np.frombuffer(f.read(), dtype=np.uint8).reshape(n, 1, h, w)
    with gzip.open(f"{FMNIST}/{stem}-labels-idx1-ubyte.gz") as f:
        magic, n2 = struct.unpack(">II", f.read(8))
        assert magic == 0x801 and n2 == n
        y = np.frombuffer(f.read(), dtype=np.uint8)
    if limit:
        x, y = x[:limit], y[:limit]
    return (x.astype(np.float32) / 255.0 - MEAN) / STD, y.astype(np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", choices=sorted(ARCHS))
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    net = ARCHS[a.arch]()
    m = onnx.load(a.model)
    sd = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    # Clip's bounds are inputs in opset 13: the writer stores them as initializers
    unexpected = [k for k in unexpected if not k.endswith((".min", ".max"))]
    if missing or unexpected:
        raise SystemExit(f"names do not match: missing {missing}, unexpected {unexpected}")
    net.eval()
    x, y = load_idx("t10k", a.limit)
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), 500):
            out = net(torch.from_numpy(x[i:i + 500]))
            t = torch.from_numpy(y[i:i + 500])
            loss += F.cross_entropy(out, t, reduction="sum").item()
            correct += (out.argmax(1) == t).sum().item()
    print(f"{a.arch} samples {len(y)} correct {correct} accuracy {correct / len(y):.4f} "
          f"loss {loss / len(y):.4f}")


if __name__ == "__main__":
    main()
