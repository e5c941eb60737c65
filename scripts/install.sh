#!/usr/bin/env bash
# Installs vaekit into ./.venv with pinned packages, and Fashion-MNIST from Debian when possible.
# Idempotent: re-running it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "vaekit install: installing Debian's dataset-fashion-mnist" >&2
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "vaekit install: could not install dataset-fashion-mnist (the digits demo still works)" >&2
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import vaekit, torch, pytest, hypothesis" 2>/dev/null; then
    echo "vaekit install: installing pinned packages into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
fi
