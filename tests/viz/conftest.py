"""Shared fixtures for the vaekit.viz tests."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure


@pytest.fixture
def saved_figures(monkeypatch):
    """Record, for every figure saved, what each axes shows at the moment of saving."""
    captured: list[list[dict]] = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        axes = []
        for ax in self.axes:
            legend = ax.get_legend()
            axes.append(
                {
                    "title": ax.get_title(),
                    "visible": ax.get_visible(),
                    "xlabel": ax.get_xlabel(),
                    "yscale": ax.get_yscale(),
                    "lines": {
                        line.get_label(): ([float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()])
                        for line in ax.get_lines()
                    },
                    "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                    "bar_heights": [p.get_height() for p in ax.patches],
                    "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
                }
            )
        captured.append(axes)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return captured
