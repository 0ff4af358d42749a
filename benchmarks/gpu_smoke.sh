#!/usr/bin/env bash
# GPU smoke check (issue 17): on a CUDA machine with no network, in under 8 minutes, check the
# environment, train every family for one short epoch, fp32 vs bf16 vs fp16 (and TF32 on/off),
# torch.compile, a 2-worker sweep sharing one GPU and the cpu-vs-gpu suite on a subset; write
# what happened to RESULTS_DIR (gpu-smoke.md summary, gpu-smoke.jsonl one line per step,
# gpu-smoke-runs.json every run's record, gpu-smoke.log everything printed).
#
#   MNISTBENCH_DATA=/path/to/data bash benchmarks/gpu_smoke.sh [RESULTS_DIR]
#
# A step that fails is recorded (its exit code) and the next one runs: the summary says which
# passed. Without a CUDA device it runs the same steps on the CPU with smaller subsets (a check
# of the script itself; its figures are not GPU figures, and the summary says so).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${1:-gpu-smoke-results}
mkdir -p "$RESULTS" && RESULTS=$(cd "$RESULTS" && pwd)
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
STORE="$RESULTS/gpu-smoke.sqlite"
LOG="$RESULTS/gpu-smoke.log"
STEPS="$RESULTS/gpu-smoke.jsonl"
: >"$LOG"
: >"$STEPS"
rm -f "$STORE"

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>>"$LOG"; then
  DEVICE=cuda SUBSET=${SUBSET:-5000} BIG_SUBSET=${BIG_SUBSET:-256}
else
  DEVICE=cpu SUBSET=${SUBSET:-256} BIG_SUBSET=${BIG_SUBSET:-32}
  echo "no CUDA device: CPU fallback (the script's own check, not GPU figures)" | tee -a "$LOG"
fi
STARTED=$(date +%s)

# step NAME SECONDS CMD...: run CMD with a time limit, log its output, record its exit code
step() {
  local name=$1 limit=$2
  shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  echo "=== $name: $*" >>"$LOG"
  timeout --signal=INT --kill-after=15 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  awk -v n="$name" -v rc="$rc" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "{\"step\": \"%s\", \"rc\": %d, \"seconds\": %.1f}\n", n, rc, b - a }' \
    >>"$STEPS"
  echo "$name: exit $rc" | tee -a "$LOG"
}

RUN=("$PY" -m mnistbench run)  # then the model, its settings and "${AT[@]}"
AT=(--device "$DEVICE" --store "$STORE" --quiet --force)

# 1. environment: what the run records, and the machine's peaks (cached for fraction_of_peak)
step environment 60 "$PY" - <<'EOF'
import json, subprocess, torch
from mnistbench.engine.device import cuda_native_bf16, tf32_setting
from mnistbench.engine.environment import collect_environment
device = "cuda" if torch.cuda.is_available() else "cpu"
env = collect_environment(device)
env["cuda_native_bf16_check"] = cuda_native_bf16()
env["tf32_setting"] = tf32_setting()
print(json.dumps(env, indent=1, default=str))
if device == "cuda":
    print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout)
EOF
if [ "$DEVICE" = cuda ]; then PEAK_SIZES=4096,8192; else PEAK_SIZES=256,512; fi
step bench-peak 90 "$PY" -m mnistbench bench peak --device "$DEVICE" --sizes "$PEAK_SIZES" \
  --repeats 3

# 2. every family, one short epoch (--subset: the first N training and test images), as one
#    sweep over models, each with its own recipe: one process, the data loaded once (separate
#    processes cost ~10 s of start-up each). A model that fails is a failed row; the rest run.
cat >"$RESULTS/families.toml" <<'EOF2'
[sweep]
name = "gpu-smoke-families"
description = "one model of every family, one short epoch each, its own recipe otherwise"
method = "grid"

[fixed]
epochs = 1

[space]
model = ["mlp", "cnn", "diet_4", "small_cnn_bn", "microresnet", "rnn_rows", "lstm_rows",
         "gru_rows", "snn_single_step", "snn", "dbn", "beta_vae", "gan", "vit", "unet",
         "speedrun_fast", "svm_rbf"]
EOF2
step families 300 "$PY" -m mnistbench sweep "$RESULTS/families.toml" --device "$DEVICE" \
  --subset "$SUBSET" --val-size 500 --store "$STORE" --quiet
for model in resnet18 simsiam_lgbm; do
  step "family-$model" 120 "${RUN[@]}" "$model" --epochs 1 --subset "$BIG_SUBSET" \
    --val-size 100 "${AT[@]}"
done

# 3. precisions: the same short epoch in fp32 (TF32 off, then on), bf16 and fp16
step precision-fp32-ieee 90 env MNISTBENCH_TF32=off "${RUN[@]}" cnn --epochs 1 \
  --subset "$SUBSET" --precision fp32 --seed 1 "${AT[@]}"
step precision-fp32-tf32 90 env MNISTBENCH_TF32=on "${RUN[@]}" cnn --epochs 1 \
  --subset "$SUBSET" --precision fp32 --seed 2 "${AT[@]}"
for precision in bf16 fp16; do
  step "precision-$precision" 90 "${RUN[@]}" cnn --epochs 1 --subset "$SUBSET" \
    --precision "$precision" --seed 3 "${AT[@]}"
done

# 4. torch.compile: warm-up timed apart, at the run's image size (64 px ResNet-18 too)
step compile-speedrun_fast 150 "${RUN[@]}" speedrun_fast --epochs 1 --subset "$SUBSET" \
  --compile --seed 4 "${AT[@]}"
step compile-resnet18-64px 150 "${RUN[@]}" resnet18 --epochs 1 --subset "$BIG_SUBSET" \
  --val-size 100 --image-size 64 --compile --seed 4 "${AT[@]}"

# 4b. issue 29: the public MNIST recipe and our speedrun on this GPU, 3 seeds each (the
# public recipe's published 0.76 s is a laptop GPU's; this puts both on the same one)
step public-recipe 120 "$PY" benchmarks/public_mnist_fast.py --device "$DEVICE" --seeds 0 1 2 \
  --json "$RESULTS/public-recipe.jsonl"
step speedrun-mnist 120 "$PY" -m mnistbench speedrun --device "$DEVICE" --seeds 3 \
  --store "$STORE" --quiet --json "$RESULTS/speedrun-mnist.json"

# 5. two workers sharing one GPU (each worker's CUDA_VISIBLE_DEVICES, recorded per run)
cat >"$RESULTS/two-workers.toml" <<'EOF'
[sweep]
name = "gpu-smoke-two-workers"
description = "two MLP trials at once on one GPU"
method = "grid"

[fixed]
model = "mlp"
epochs = 1
seed = 7

[space]
lr = [1e-3, 3e-3]
EOF
step sweep-2-workers 120 "$PY" -m mnistbench sweep "$RESULTS/two-workers.toml" --workers 2 \
  --device "$DEVICE" --subset "$SUBSET" --val-size 500 --store "$STORE" --quiet

# 6. the cpu-vs-gpu suite (224 px ResNet-18/50), on a subset: the CPU half is the slow one
step suite-cpu-vs-gpu 150 "$PY" -m mnistbench suite cpu-vs-gpu --subset "${SUITE_SUBSET:-64}" \
  --val-size 32 --store "$STORE" --quiet

# 7. every run's record, and a summary
step export 60 "$PY" -m mnistbench export --store "$STORE" --format json \
  --out "$RESULTS/gpu-smoke-runs.json"
"$PY" "$ROOT/benchmarks/gpu_smoke_summary.py" "$RESULTS" "$DEVICE" "$(($(date +%s) - STARTED))" \
  | tee "$RESULTS/gpu-smoke.md"
