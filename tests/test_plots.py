"""The figures: one colour per scheduler in every figure, and intervals that do not hide the data."""

from learned_lr.experiments.plots import scheduler_colors
from learned_lr.experiments.robustness import summarize


def test_every_named_scheduler_and_bundled_policy_keeps_its_colour_whatever_else_is_in_the_figure():
    named = ["linear-warmup", "cosine", "constant", "greedy", "prodigy", "bundled", "general", "mnist-bc"]
    alone = {name: scheduler_colors([name])[name] for name in named}
    mixed = scheduler_colors(["my policy", *reversed(named), "another policy"])
    assert all(mixed[name] == alone[name] for name in named)
    assert len(set(alone.values())) == len(named)  # no two named ones share a colour
    assert mixed["my policy"] != mixed["another policy"]
    assert not {mixed["my policy"], mixed["another policy"]} & set(alone.values())  # a user's policy never looks like a named one
    assert scheduler_colors(["linear", "linear-warmup"]) == {"linear": "tab:blue", "linear-warmup": "tab:blue"}  # HF's twin


def test_robustness_figure_shows_seeds_as_points_where_the_intervals_would_swamp_the_panel(tmp_path, monkeypatch):
    from learned_lr.experiments import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))

    def results(losses_by_seed: list[float]) -> list[dict]:
        runs = [{"base_lr": lr, "test_loss": loss * lr * 10, "test_accuracy": 0.9, "diverged": False}
                for lr in (0.05, 0.2) for loss in losses_by_seed]
        return [{"label": label, "kind": "schedule", "lrs": [0.05, 0.2], "runs": runs} for label in ("cosine", "constant")]

    for losses, swamped in (([0.30, 0.31], False), ([0.05, 2.0], True)):  # two seeds: t = 12.7 widens a spread-out pair
        group = results(losses)
        plots.plot_robustness(summarize(group, core_lrs=[0.05, 0.2]), group, tmp_path / "r.png")
        loss_panel = figures[-1].axes[0]
        assert ("points: seeds" in loss_panel.get_ylabel()) is swamped
        kinds = {type(c).__name__ for c in loss_panel.collections}  # a scatter of seeds per scheduler, or CI bars
        assert kinds == ({"PathCollection"} if swamped else {"LineCollection"}) and len(loss_panel.collections) == 2
        assert "(mean, 95% CI)" in figures[-1].axes[1].get_ylabel()  # equal accuracies: no spread there


def test_benchmark_figure_shows_seeds_as_points_where_the_intervals_would_swamp_a_panel(monkeypatch):
    from learned_lr.experiments import plots
    from learned_lr.experiments.benchmark import _family_rows
    from learned_lr.experiments.robustness import Contender

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    entrants = [Contender("cosine", "schedule", "cosine"), Contender("bundled", "policy", "bundled")]
    for losses, swamped in (([0.30, 0.31], False), ([0.05, 2.0], True)):
        cells = {c.label: {f"{m:g}": {"base_lr": m, "runs": [{"test_loss": v * m, "test_accuracy": 0.9, "diverged": False} for v in losses]}
                           for m in (1.0, 10.0)} for c in entrants}
        result = {"suite": "smoke", "families": ["digits"], "multipliers": [1.0, 10.0], "summary": {c.label: {} for c in entrants},
                  "per_family": {"digits": _family_rows(cells, entrants, [1.0, 10.0])}, "setups": {"digits": {"task": {"optimizer": "sgd"}}}}
        plots.plot_benchmark(result, "unused.png")
        panel = figures[-1].axes[0]
        assert ("points: seeds" in panel.get_ylabel()) is swamped
        kinds = {type(c).__name__ for c in panel.collections}
        assert kinds == ({"PathCollection"} if swamped else {"LineCollection"}) and len(panel.collections) == 2
        if swamped:  # every seed of every cell is a point
            assert sum(len(c.get_offsets()) for c in panel.collections) == 2 * 2 * 2


def test_log_loss_axes_label_plain_numbers_and_only_the_1_2_5_ticks_when_the_range_is_wide():
    import matplotlib.pyplot as plt

    from learned_lr.experiments.plots import _plain_log_labels

    fig, ax = plt.subplots()
    ax.set_yscale("log")
    label = _plain_log_labels(ax)
    ax.set_ylim(0.04, 2.3)  # digits' panel: 1.8 decades, where labelling 0.06-0.09 and 0.3-0.9 made the labels overlap
    assert [label(v, 0) for v in (0.05, 0.06, 0.1, 0.2, 0.3, 0.5, 0.9, 1.0, 2.0)] == ["0.05", "", "0.1", "0.2", "", "0.5", "", "1", "2"]
    ax.set_ylim(2.4, 3.3)  # char-lm's panel: every tick is needed, none is "3 x 10^0"
    assert [label(v, 0) for v in (2.5, 3.0)] == ["2.5", "3"]
    plt.close(fig)
