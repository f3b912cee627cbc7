#!/usr/bin/env bash
# The measurements that need a CUDA GPU, in one go, within a time budget (a lent H200 gives ~10 minutes):
#   1. trainee-steps/s of batched MLP runs on CUDA vs the CPU (benchmarks/gpu_trainees.py);
#   2. the `full` suite's mnist-resnet18 family (ResNet-18 at its real width 64, 2,000 steps, SGD): a
#      held-out family of the general policy, with the fixed schedules, Prodigy, D-Adapt Adam and the
#      bundled policy at the five LR multipliers, cells run by --workers processes sharing the GPU.
#
# The number of held-out seeds per cell is the one choice made here, from time alone: the tuning sweep
# runs first and is timed, and the cells get the most seeds in 5, 3, 2 that its rate says fit the time
# left (never from any result). Measured on one H200 (docs/results.md section 6): a 2,000-step width-64
# ResNet-18 run takes ~29 s, so the suite's row (175 runs) needs about an hour; a 15-minute lease tunes it
# and runs a few cells, which later leases resume from the same --work folder (the second lease, with the
# sweep carried over: 15 one-seed cells of bundled, linear-warmup and a --policies file in ~5 min of 5
# processes; five Prodigy runs sharing the GPU did not finish 2,000 steps in 4.5 min). The benchmark command actually run is printed and written to
# OUT/commands.txt; rerunning it with the same --work on any machine trains nothing that finished.
#
#   bash benchmarks/gpu_checks.sh results/gpu   # env: PYTHON, BUDGET_S=540, WORKERS=5, SEEDS (fixed), SKIP_TRAINEES=1,
#                                               # CONTENDERS (comma-separated), POLICIES ("LABEL=PATH,...", as --policies)
set -uo pipefail
PY=${PYTHON:-.venv/bin/python}
OUT_DIR=${1:-results/gpu}
BUDGET_S=${BUDGET_S:-540}   # the whole script, from its start
WORKERS=${WORKERS:-5}    # on an H200, 5 ResNet-18 processes ran ~1.4x one; 16 finished no 2-seed cell in 270 s
WORK=${WORK:-runs/gpu-resnet18}
SUITE=${SUITE:-full}        # smoke: a dry run of this script on a CPU
CONTENDERS=${CONTENDERS:-linear-warmup,cosine,polynomial,constant,prodigy,dadapt-adam,bundled}
POLICIES=${POLICIES:-}
START=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
mkdir -p "$OUT_DIR" "$WORK"
: > "$OUT_DIR/commands.txt"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi: no GPU here"
$PY -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda)" || exit 1

if [ -z "${SKIP_TRAINEES:-}" ]; then
    echo "== 1. batched MLP trainees, CUDA vs CPU"
    timeout 150 $PY benchmarks/gpu_trainees.py --runs 256 --steps 50 --rounds 3 | tee "$OUT_DIR/gpu_trainees.txt"
fi

echo "== 2. mnist-resnet18 at the $SUITE suite's size"
# The bundled policy on a CUDA ResNet for a few steps first: if the policy path fails on this GPU, the
# schedules and LR-free optimizers are still measured (and the failure is in the log).
if ! $PY - <<'EOF'
from learned_lr.experiments.benchmark import contenders
from learned_lr.experiments.robustness import run_scheduler
from learned_lr.tasks.config import TaskConfig
policy, = contenders(["bundled"])
out = run_scheduler(policy, TaskConfig(task="mnist-resnet18", width=8, batch_size=16, val_batch_size=16, device="cuda"), 12, [0.05], 1, progress=False)
print("bundled policy on CUDA: test loss", out["runs"][0]["test_loss"])
EOF
then
    CONTENDERS=${CONTENDERS%,bundled}
    echo "the bundled policy failed on CUDA (above): measuring without it"
fi

sweep_start=$(date +%s)
# The tuning sweep (5 LRs x 3 validation seeds, extended at an edge) plus one 1-seed cell: times the rate.
tune_cmd="$PY -m learned_lr.cli benchmark --suite $SUITE --families mnist-resnet18 --contenders constant --multipliers 1 --seeds 1 --workers $WORKERS --work $WORK --out $OUT_DIR/tuning"
echo "$tune_cmd" >> "$OUT_DIR/commands.txt"
timeout $(($(left) - 30)) $tune_cmd || { echo "tuning failed or did not finish in the budget: no cells run"; exit 1; }
sweep_s=$(( $(date +%s) - sweep_start ))
runs_done=$($PY -c "import json,glob; print(sum(json.load(open(f))['setting']['seeds'] for f in glob.glob('$WORK/sweep/mnist-resnet18/*.json')) + 1)")
remaining=$(( $(left) - 40 ))   # 40 s kept for the report
seeds=${SEEDS:-0}   # SEEDS=N: that many, whatever the sweep's rate (e.g. when the sweep is already cached)
for s in $([ "$seeds" -gt 0 ] || echo 5 3 2); do
    # cells = contenders x 5 multipliers x s runs; at the sweep's rate they must fit in 80% of what is left (more processes
    # hardly raise the rate: ResNet-18 runs keep an H200 busy). A cached sweep says nothing of the rate: give SEEDS then.
    n=$(( ($(echo $CONTENDERS | tr ',' '\n' | wc -l) + $(echo "$POLICIES" | tr ',' '\n' | grep -c =)) * 5 * s ))
    if [ $(( n * sweep_s * 10 )) -le $(( runs_done * remaining * 8 )) ]; then seeds=$s; break; fi
done
echo "sweep: $runs_done runs in ${sweep_s}s; ${remaining}s left -> seeds per cell: $seeds"
if [ "$seeds" -gt 0 ]; then
    cmd=($PY -m learned_lr.cli benchmark --suite $SUITE --families mnist-resnet18 --contenders $CONTENDERS --seeds $seeds --workers $WORKERS --work $WORK --out $OUT_DIR/resnet18)
    [ -n "$POLICIES" ] && cmd+=(--policies "$POLICIES")
    printf '%q ' "${cmd[@]}" >> "$OUT_DIR/commands.txt"; echo >> "$OUT_DIR/commands.txt"
    timeout $(( $(left) - 30 )) "${cmd[@]}" || echo "the benchmark did not finish in the budget (finished cells are in $WORK)"
fi
echo "done in $(( $(date +%s) - START ))s"
