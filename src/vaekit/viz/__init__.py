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
from vaekit.viz.tables import plot_marginals, plot_reconstruction_scatter, write_csv
from vaekit.viz.latent_map import latent_codes, latent_map, manifold_codes, manifold_grid, plot_latent_map, save_manifold
from vaekit.viz.report import write_report
from vaekit.viz.traversals import traversal_rows, traversal_values
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
    "plot_marginals",
    "plot_reconstruction_scatter",
    "write_csv",
    "latent_codes",
    "latent_map",
    "plot_latent_map",
    "manifold_codes",
    "manifold_grid",
    "save_manifold",
    "traversal_rows",
    "traversal_values",
    "write_report",
]
