"""The LoRA comparison: every scheduler x batch size x seed, a table with 95% CIs and a figure.

Runs are ordered batch size, then seed, then scheduler, so an interrupted comparison already
holds whole seeds; each finished run leaves ``work/bs{B}/seed{S}/{scheduler}/result.json`` and a
rerun skips it. The pretrained model's losses (the "before") are computed once and kept in
``work/base.json``.

Example:
    >>> results = run_comparison(CompareLLMConfig(seeds=1, batch_sizes="4"))   # doctest: +SKIP
    >>> print(markdown_report(summarize(results, CompareLLMConfig())))
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tqdm.auto import tqdm

from learned_lr.experiments.llm.config import CompareLLMConfig, FinetuneLLMConfig
from learned_lr.experiments.llm.finetune import base_losses, finetune, learned_policy_sha256, load_result, smoothness
from learned_lr.experiments.stats import format_stat, mean_ci
from learned_lr.files import slug, write_json

METRICS = (("held_out_after", "held-out loss after"), ("forgetting", "forgetting (fortunes loss after - before)"),
           ("smoothness", "train-loss increments (sum)"), ("smoothness_10", "increments of its 10-step mean"))
SMOOTHING = 10  # at batch size 1 the raw increments are mostly batch-to-batch noise; a 10-step mean shows the trend's reversals


def metric(result: dict, key: str) -> float:
    """One run's value of a METRICS key (the smoothed increments are computed from its loss curve)."""
    if key == "smoothness_10":
        from learned_lr.experiments.plots import smooth

        return smoothness(list(smooth(result["train_losses"], SMOOTHING))) if not result["diverged"] else float("nan")
    return result[key]


def _base(config: CompareLLMConfig, work: Path, progress: bool) -> dict[str, float]:
    path = work / "base.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == dataclasses.asdict(config.settings):
            return saved["losses"]
    losses = base_losses(config.settings, progress=progress)
    write_json(path, {"settings": dataclasses.asdict(config.settings), "losses": losses})
    return losses


def run_comparison(config: CompareLLMConfig, progress: bool = True) -> list[dict]:
    """Run (or load) every run of the grid; return their results."""
    work = Path(config.work)
    before = None
    results = []
    contenders = [(name, name, config.settings) for name in config.scheduler_list]
    contenders += [(label, "learned", dataclasses.replace(config.settings, policy=path)) for label, path in config.policy_list]
    grid = [(b, s, c) for b in config.batch_size_list for s in range(config.seeds) for c in contenders]
    for batch_size, seed, (label, name, settings) in tqdm(grid, desc="LoRA comparison", disable=not progress):
        folder = work / f"bs{batch_size}" / f"seed{seed}" / slug(label)
        result = load_result(folder)
        if result is not None and result.get("settings") != dataclasses.asdict(settings):
            result = None  # finished under other settings: run it again
        if result is not None and name == "learned" and result.get("policy_sha256") != learned_policy_sha256(settings):
            result = None  # finished with another version of the policy file
        if result is None:
            before = before or _base(config, work, progress)
            run = FinetuneLLMConfig(settings=settings, scheduler=name, batch_size=batch_size, seed=seed, out=str(folder))
            result = finetune(run, progress=progress, before=before, label=label)
        results.append(result)
    return results


def summarize(results: list[dict], config: CompareLLMConfig) -> dict:
    """Per (batch size, scheduler): each metric's mean and 95% CI over seeds, and the diverged count."""
    rows = []
    names = config.scheduler_list + [label for label, _ in config.policy_list]
    for batch_size in config.batch_size_list:
        for name in names:
            runs = [r for r in results if r["batch_size"] == batch_size and r["scheduler"] == name]
            row = {"batch_size": batch_size, "scheduler": name, "runs": len(runs), "diverged": sum(r["diverged"] for r in runs)}
            for key, _ in METRICS:
                row[key] = mean_ci([metric(r, key) for r in runs])
            rows.append(row)
    before = results[0] if results else {}
    learned = (["learned"] if "learned" in config.scheduler_list else []) + [label for label, _ in config.policy_list]
    paired = {}  # learned - best fixed schedule, seed by seed (same data order and LoRA init)
    for batch_size in config.batch_size_list:
        fixed = [r for r in rows if r["batch_size"] == batch_size and r["scheduler"] not in learned and r["held_out_after"]["n"]]
        if not fixed:
            continue
        best = min(fixed, key=lambda r: r["held_out_after"]["mean"])["scheduler"]
        by_seed = {(r["scheduler"], r["seed"]): r["held_out_after"] for r in results if r["batch_size"] == batch_size}
        for label in learned:
            diffs = [by_seed[(label, s)] - by_seed[(best, s)] for s in range(config.seeds) if (label, s) in by_seed and (best, s) in by_seed]
            paired[f"{label}@{batch_size}"] = {"against": best, **mean_ci(diffs)}
    return {"settings": dataclasses.asdict(config.settings), "seeds": config.seeds, "rows": rows, "learned": learned, "paired": paired,
            "held_out_before": before.get("held_out_before"), "forget_before": before.get("forget_before")}


def markdown_report(summary: dict) -> str:
    """Tables per batch size; the best mean per column is in bold; the learned scheduler's gap is stated."""
    s = summary["settings"]
    lines = [f"SmolLM2-135M-Instruct, LoRA r={s['lora_rank']} on q/v, AdamW base LR {s['lr']:g}, {s['steps']} steps, "
             f"{s['max_tokens']} tokens at most, {summary['seeds']} seeds (mean ± 95% CI). "
             f"Before fine-tuning: held-out loss {summary['held_out_before']:.4f}, fortunes loss {summary['forget_before']:.4f}.", ""]
    for batch_size in sorted({r["batch_size"] for r in summary["rows"]}):
        rows = [r for r in summary["rows"] if r["batch_size"] == batch_size]
        lines += [f"### Batch size {batch_size}", "",
                  "| scheduler | " + " | ".join(label for _, label in METRICS) + " | diverged |",
                  "|---" * (len(METRICS) + 2) + "|"]
        best = {key: min((r[key]["mean"] for r in rows if r[key]["n"]), default=None) for key, _ in METRICS}
        for r in rows:
            cells = []
            for key, _ in METRICS:
                text = format_stat(r[key], missing="n/a")
                cells.append(f"**{text}**" if r[key]["n"] and r[key]["mean"] == best[key] else text)
            lines.append(f"| {r['scheduler']} | " + " | ".join(cells) + f" | {r['diverged']}/{r['runs']} |")
        fixed = [r for r in rows if r["scheduler"] not in summary["learned"] and r["held_out_after"]["n"]]
        if fixed:
            best_fixed = min(fixed, key=lambda r: r["held_out_after"]["mean"])
            lines.append("")
            for r in rows:
                if r["scheduler"] in summary["learned"] and r["held_out_after"]["n"]:
                    gap = r["held_out_after"]["mean"] - best_fixed["held_out_after"]["mean"]
                    pair = summary["paired"].get(f"{r['scheduler']}@{batch_size}", {"n": 0})
                    paired_text = f"; seed by seed {pair['mean']:+.4f} ± {pair['ci']:.4f}" if pair["n"] > 1 else ""
                    lines.append(f"- {r['scheduler']} vs the best Hugging Face schedule ({best_fixed['scheduler']}) on held-out loss: "
                                 f"{gap:+.4f} ({100 * gap / best_fixed['held_out_after']['mean']:+.2f}%{paired_text}).")
        lines.append("")
    return "\n".join(lines)
