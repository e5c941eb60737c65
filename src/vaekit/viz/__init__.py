"""Pictures of data, models and training: image grids and matplotlib plots, saved as PNG.

Every writer creates the parent directory, writes atomically (a reader never sees a
half-written file; on error a pre-existing file is untouched) and returns the path. No
global matplotlib state is touched: figures live on their own Agg canvas.
"""

from vaekit.viz.curves import (
    plot_bars,
    plot_kl_per_dimension,
    plot_lines,
    plot_roc,
    plot_score_histograms,
    plot_training_curves,
    read_metrics,
)
from vaekit.viz.grids import (
    MIN_TILE_PIXELS,
    image_grid,
    save_image_grid,
    save_image_rows,
    save_reconstructions,
    to_images,
)

__all__ = [
    "MIN_TILE_PIXELS",
    "to_images",
    "image_grid",
    "save_image_grid",
    "save_image_rows",
    "save_reconstructions",
    "read_metrics",
    "plot_training_curves",
    "plot_kl_per_dimension",
    "plot_bars",
    "plot_lines",
    "plot_roc",
    "plot_score_histograms",
]
