"""The package's layers, read from the imports: data flows one way.

    library (what `pip install learned-lr` gives: scheduler, policy, observation, control,
             reward, loop, layers, settings, checkpoint, files, bundled, gates, integrations, policies)
      < tasks (trainees) < training (experts, rollouts, BC, DAgger, PPO, backends, gym env)
      < experiments (evaluation, robustness, ablations, reports, pipelines, LLM runs) < cli

A module may import only from its own layer or below, never a private (``_name``) name of another
module, and the library's core imports nothing beyond torch, numpy, safetensors and the standard library.
"""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "learned_lr"
LAYERS = {"library": 0, "tasks": 1, "training": 2, "experiments": 3, "cli": 4}
CORE_THIRD_PARTY = {"torch", "numpy", "safetensors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "library"


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_layers_are_the_ones_documented():
    names = {module_name(p) for p in all_modules()}
    assert {"learned_lr.scheduler", "learned_lr.loop", "learned_lr.tasks.run", "learned_lr.training.ppo",
            "learned_lr.experiments.evaluate", "learned_lr.cli"} <= names
    assert {layer_of(n) for n in names} == set(LAYERS)


def test_no_layer_imports_a_higher_one_or_another_modules_internals():
    problems = []
    for path in all_modules():
        me = module_name(path)
        for target, names, line in imports(path):
            if target.split(".")[0] != "learned_lr":
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if LAYERS[layer_of(target)] > LAYERS[layer_of(me)]:
                problems.append(f"{where}: {layer_of(me)} module {me} imports {target} ({layer_of(target)})")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != me:
                problems.append(f"{where}: {me} imports the internals {private} of {target}")
    assert not problems, "\n".join(problems)


def test_the_core_library_needs_only_torch_numpy_and_safetensors():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems = []
    for path in all_modules():
        me = module_name(path)
        if layer_of(me) != "library" or me.startswith("learned_lr.integrations"):
            continue  # integrations import their framework, behind its extra
        for target, _, line in imports(path):
            top = target.split(".")[0]
            if top not in stdlib | CORE_THIRD_PARTY | {"learned_lr"}:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {me} imports {target}")
    assert not problems, "\n".join(problems)


def test_no_source_file_is_much_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in all_modules() if (n := len(p.read_text().splitlines())) > 420}
    assert not long, long
