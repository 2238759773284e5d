#!/usr/bin/env bash
# Create .venv and install marlmod with its dev tools.
#
# PyTorch comes first and pinned, so that pip never resolves marlmod's loose `torch>=2.3` to a
# multi-GB CUDA build: on machines that hold a local CPU wheel of torch 2.13.0 pip takes that file;
# elsewhere set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) or MARLMOD_TORCH to
# choose another build. An already-installed torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${pip[@]}" install "${MARLMOD_TORCH:-torch==2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
"${pip[@]}" install -e ".[dev]"
.venv/bin/python -c "import torch, marlmod; print(f'marlmod {marlmod.__version__} with torch {torch.__version__}')"
