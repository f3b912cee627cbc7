# The README's two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv and install what they need through scripts/setup.sh.
.PHONY: setup demo test test-slow bench clean

VENV := .venv
STAMP := $(VENV)/.setup-done

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/learned-lr demo --preset small --work runs/demo --out results/demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/batched_vs_sequential.py
	$(VENV)/bin/python benchmarks/policy_latency.py
	$(VENV)/bin/python benchmarks/scheduler_overhead.py
	$(VENV)/bin/python benchmarks/decision_interval.py

clean:
	rm -rf $(VENV) results runs .pytest_cache
