#!/usr/bin/env bash
# The GPU checks of issue 11 §6 in one command, for a session lent a GPU machine (device tool):
#   run(command="bash scripts/gpu_checks.sh", timeout_s=540)
# On that machine python3 already has torch, safetensors, scikit-learn, tqdm, PyYAML and matplotlib;
# vaekit runs from src/. What it writes: $OUT/gpu_checks.log and one JSON per benchmark, to put in
# the README ("GPUs"): the CUDA tests, then training (vaekit.fit against plain loops, EMA),
# precision/batch size, and log-likelihood images/s with the bf16 error, all on the GPU, on
# random binary images (no data set travels).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    $PY -c "import torch, vaekit; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    timeout 180 $PY -m pytest -m cuda tests/train/test_cuda.py tests/data/test_data_transforms.py -q -p no:cacheprovider
    timeout 120 $PY benchmarks/trainer_speed.py --data random --device cuda --rounds 3 --ema 0.999 \
        --json "$OUT/trainer_speed_cuda.json"
    timeout 120 $PY benchmarks/precision_speed.py --data random --device cuda --rounds 3 --no-compile \
        --json "$OUT/precision_speed_cuda.json"
    timeout 90 $PY benchmarks/loglik_speed.py --device cuda --images 512 --rounds 5 --bf16 --error-images 200 \
        --json "$OUT/loglik_speed_cuda.json"
} 2>&1 | tee "$OUT/gpu_checks.log"
