"""Tests of vaekit.viz.curves: metrics reading and every plot writer."""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from vaekit.errors import ConfigError, DataError
from vaekit.viz import (
    plot_bars,
    plot_kl_per_dimension,
    plot_lines,
    plot_roc,
    plot_score_histograms,
    plot_training_curves,
    read_metrics,
)


def _assert_png(path, tmp_dir=None):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        assert im.size[0] > 100 and im.size[1] > 100
    if tmp_dir is not None:  # nothing but the PNG (and inputs) left behind
        assert not [p.name for p in tmp_dir.iterdir() if p.name.endswith(".tmp")]


def _epoch(e):
    return {
        "epoch": e,
        "train/loss": 10.0 / e,
        "val/loss": 11.0 / e,
        "train/reconstruction": 8.0 / e,
        "train/kl": 2.0 + e,
        "val/kl": 2.5 + e,
        "lr": 1e-3,
        "train/note": "text is not plotted",
    }


@pytest.fixture
def metrics_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = []
    for e in (1, 2, 3):
        lines.append(json.dumps({"step": 100 * e, "train/loss": 99.0}))  # step-level: ignored
        lines.append(json.dumps(_epoch(e)))
    path.write_text("\n".join(lines) + "\n" + '{"epoch": 4, "train/loss": 2.')  # killed mid-write
    return path


# --- read_metrics ----------------------------------------------------------------------

def test_read_metrics_ignores_truncated_last_line(metrics_file):
    records = read_metrics(metrics_file)
    assert len(records) == 6
    assert [r.get("epoch") for r in records] == [None, 1, None, 2, None, 3]
    assert records[-1] == _epoch(3)


def test_read_metrics_keeps_complete_unterminated_line_and_refuses_corruption(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}')
    assert read_metrics(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epoch": 2, "tra\n{"epoch": 3}\n')
    with pytest.raises(DataError, match="line 2"):
        read_metrics(path)
    path.write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2"):
        read_metrics(path)
    with pytest.raises(DataError, match="not found"):
        read_metrics(tmp_path / "missing.jsonl")


# --- plot_training_curves --------------------------------------------------------------

def test_training_curves_panel_per_term(metrics_file, tmp_path, saved_figures):
    out = plot_training_curves(metrics_file, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    _assert_png(out, out.parent)
    (axes,) = saved_figures
    panels = {ax["title"]: ax for ax in axes if ax["visible"]}
    assert list(panels) == ["loss", "reconstruction", "kl"]
    assert set(panels["loss"]["lines"]) == {"train", "val"}
    assert panels["loss"]["lines"]["train"] == ([1.0, 2.0, 3.0], [10.0, 5.0, 10.0 / 3])
    assert panels["loss"]["lines"]["val"] == ([1.0, 2.0, 3.0], [11.0, 5.5, 11.0 / 3])
    assert set(panels["reconstruction"]["lines"]) == {"train"}
    assert panels["kl"]["lines"]["val"][1] == [3.5, 4.5, 5.5]
    assert panels["kl"]["legend"] == ["train", "val"]
    assert all(ax["xlabel"] == "epoch" for ax in panels.values())


def test_training_curves_from_records(tmp_path, saved_figures):
    history = [_epoch(2), {"step": 5, "val/loss": 0.0}, _epoch(1), {**_epoch(2), "val/loss": 1.0}]
    plot_training_curves(history, tmp_path / "c.png")
    panels = {ax["title"]: ax for ax in saved_figures[0] if ax["visible"]}
    # sorted by epoch; the repeated epoch 2 (a resumed run) keeps its last record
    assert panels["loss"]["lines"]["val"] == ([1.0, 2.0], [11.0, 1.0])
    with pytest.raises(DataError):
        plot_training_curves([{"step": 1, "train/loss": 1.0}], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_no_pyplot_figures_left_open(metrics_file, tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_training_curves(metrics_file, tmp_path / "c.png")
    plot_kl_per_dimension([0.5, 0.0], tmp_path / "kl.png")
    assert plt.get_fignums() == before


# --- KL per dimension ------------------------------------------------------------------

def test_kl_per_dimension(tmp_path, saved_figures):
    kl = torch.tensor([[0.5, 0.0, 0.02, 0.005], [1.5, 0.0, 0.02, 0.005]])  # (N, D): averaged
    out = plot_kl_per_dimension(kl, tmp_path / "kl.png", threshold=0.01)
    _assert_png(out, tmp_path)
    (ax,) = saved_figures[0]
    assert "2 of 4 dimensions with KL > 0.01 nats" in ax["title"] and "active" not in ax["title"]
    assert np.allclose(ax["bar_heights"], [1.0, 0.0, 0.02, 0.005])  # dimension order
    assert any("threshold" in t for t in ax["legend"])
    assert ax["lines"][next(k for k in ax["lines"] if "threshold" in k)][1] == [0.01, 0.01]

    plot_kl_per_dimension(kl[0], tmp_path / "kl_sorted.png", threshold=0.001, sort=True)
    (ax,) = saved_figures[1]
    assert "3 of 4 dimensions with KL > 0.001 nats" in ax["title"]
    assert np.allclose(ax["bar_heights"], [0.5, 0.02, 0.005, 0.0])
    assert ax["xticklabels"] == ["0", "2", "3", "1"]


def test_kl_per_dimension_counts_active_units_by_the_metrics_definition(tmp_path, saved_figures):
    """One definition of "active units" (Burda et al.: Cov_x E_q[z] > 0.01), as metrics.json counts them."""
    kl = [0.5, 0.0, 0.02, 0.005]
    activity = [0.3, 0.02, 0.0, 0.5]  # unit 1 has a tiny KL yet varies with x; unit 2 the reverse
    plot_kl_per_dimension(kl, tmp_path / "kl.png", activity=activity)
    (ax,) = saved_figures[0]
    assert "3 of 4 active units" in ax["title"] and "Cov" in ax["title"]
    with pytest.raises(DataError, match="one value per latent dimension"):
        plot_kl_per_dimension(kl, tmp_path / "kl2.png", activity=[0.1])


def test_kl_per_dimension_refuses_bad_input(tmp_path):
    with pytest.raises(DataError):
        plot_kl_per_dimension([0.1, float("nan")], tmp_path / "kl.png")
    with pytest.raises(ConfigError):
        plot_kl_per_dimension([0.1, 0.2], tmp_path / "kl.png", threshold=-1)
    assert not (tmp_path / "kl.png").exists()


# --- general helpers -------------------------------------------------------------------

def test_plot_bars_and_lines(tmp_path, saved_figures):
    _assert_png(plot_bars({"AE": 0.012, "PCA": 0.031}, tmp_path / "bars.png", ylabel="MSE", title="Test error"), tmp_path)
    (ax,) = saved_figures[0]
    assert ax["title"] == "Test error" and np.allclose(ax["bar_heights"], [0.012, 0.031])

    out = plot_lines(
        [2, 4, 8], {"AE": [0.05, 0.03, 0.02], "PCA": np.array([0.06, 0.05, 0.04])}, tmp_path / "lines.png",
        xlabel="latent dimension", ylabel="MSE", title="AE vs PCA", logy=True,
    )
    _assert_png(out, tmp_path)
    (ax,) = saved_figures[1]
    assert ax["yscale"] == "log"
    assert ax["lines"]["PCA"] == ([2.0, 4.0, 8.0], [0.06, 0.05, 0.04])
    assert ax["legend"] == ["AE", "PCA"]
    with pytest.raises(DataError):
        plot_lines([1, 2, 3], {"AE": [1.0, 2.0]}, tmp_path / "bad.png", "x", "y", "t")


# --- anomaly detection -----------------------------------------------------------------

def test_plot_roc(tmp_path, saved_figures):
    labels = np.array([0] * 50 + [1] * 10)
    scores = np.concatenate([np.linspace(0, 1, 50), np.linspace(2, 3, 10)])
    _assert_png(plot_roc(labels, torch.tensor(scores), tmp_path / "roc.png"), tmp_path)
    (ax,) = saved_figures[0]
    assert "AUROC = 1.000" in ax["legend"]
    plot_roc(labels, -scores, tmp_path / "roc.png")
    assert "AUROC = 0.000" in saved_figures[1][0]["legend"]
    with pytest.raises(DataError):
        plot_roc(np.zeros(5), np.arange(5.0), tmp_path / "roc1.png")
    with pytest.raises(DataError):
        plot_roc([0, 1, 2], [0.1, 0.2, 0.3], tmp_path / "roc2.png")


def test_plot_score_histograms(tmp_path, saved_figures):
    rng = np.random.default_rng(0)
    out = plot_score_histograms(rng.normal(size=200), rng.normal(3, 1, size=20), tmp_path / "h.png", threshold=1.5)
    _assert_png(out, tmp_path)
    (ax,) = saved_figures[0]
    assert ax["legend"] == ["threshold = 1.5", "normal (n=200)", "anomalous (n=20)"] or set(ax["legend"]) == {
        "threshold = 1.5", "normal (n=200)", "anomalous (n=20)"}
    assert ax["lines"]["threshold = 1.5"][0] == [1.5, 1.5]
    with pytest.raises(DataError):
        plot_score_histograms([], [1.0], tmp_path / "h2.png")


# --- atomic writes and isolation -------------------------------------------------------

def test_failed_figure_write_leaves_existing_file_intact(tmp_path, monkeypatch, metrics_file):
    path = tmp_path / "curves.png"
    plot_training_curves(metrics_file, path)
    before = path.read_bytes()

    def broken_savefig(self, fname, *args, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half-written")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_training_curves(metrics_file, path)
    with pytest.raises(OSError, match="disk full"):
        plot_bars({"a": 1.0}, path, ylabel="y", title="t")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]


def test_viz_imports_only_errors_and_io_from_vaekit():
    """vaekit.viz may use vaekit.errors, vaekit._io and the version, never other sub-packages nor pyplot."""
    import ast
    from pathlib import Path

    import vaekit.viz

    allowed = {"vaekit.errors", "vaekit._io", "vaekit._version"}
    sources = sorted(Path(vaekit.viz.__file__).parent.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "grids.py", "curves.py"}
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith("matplotlib.pyplot"), f"{source.name} imports pyplot"
                if name == "vaekit" or name.startswith("vaekit."):
                    assert name in allowed or name.startswith("vaekit.viz"), f"{source.name} imports {name}"


def test_marginals_with_the_wrong_number_of_feature_names_say_so(tmp_path):
    """Too few names is a DataError naming both counts, not an IndexError from inside the plot."""
    from vaekit.viz import plot_marginals

    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DataError, match="1 feature names for 3 features"):
        plot_marginals(x, x, tmp_path / "m.png", names=["a"])
    assert not (tmp_path / "m.png").exists()
