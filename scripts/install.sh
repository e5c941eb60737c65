#!/usr/bin/env bash
# Installs vaekit into ./.venv with pinned packages, and Fashion-MNIST from Debian when possible.
# Idempotent: re-running it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages: Fashion-MNIST, and the headless browser the page tests drive.
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "vaekit install: installing Debian's ${missing[*]}" >&2
    (apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null) \
        || echo "vaekit install: could not install ${missing[*]} (the digits demo still works; tests that need them fail)" >&2
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import vaekit, torch, pytest, hypothesis, torchmetrics, prdc, zuko, skimage, selenium, onnx, onnxruntime, tensorboard, mlflow" 2>/dev/null; then
    echo "vaekit install: installing pinned packages into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
fi
