#!/bin/sh
# bench/hvp_compare.sh — bitplan vs PyTorch (double backward, PyHessian's
# method) on the same ONNX weights and the same calibration samples, in one
# run: seconds per HVP and per gradient, vᵀHv of a fixed vector per layer
# (must agree to float rounding), and Hutchinson traces (must agree within
# their standard errors).
#
#   bench/hvp_compare.sh [MODEL.onnx] [SAMPLES] [PROBES] [THREADS]
#
# Defaults: models/resnet8.onnx (or the built-in untrained ResNet-8 graph,
# saved to a temporary file), 512 samples, 20 probes, 2 threads.
# Needs Debian's python3-torch and python3-onnx (/usr/bin/python3).
set -e
BUILD=${BUILD:-build}
model=${1:-}
samples=${2:-512}
probes=${3:-20}
threads=${4:-2}
make -s BUILD="$BUILD" "$BUILD/bench/hvp" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$model" ] && [ -f models/resnet8.onnx ]; then model=models/resnet8.onnx; fi
if [ -z "$model" ]; then
  model="$tmp/resnet8-builtin.onnx"
  save="--save-model $model"
else
  save=""
  mflag="--model $model"
fi
"$BUILD/bench/hvp" $mflag $save --samples "$samples" --threads "$threads" --probes "$probes" \
  --json "$tmp/bitplan.json"
echo
/usr/bin/python3 bench/hvp_torch.py --model "$model" --threads "$threads" --compare "$tmp/bitplan.json"
