"""The latent explorer (``vaekit explore RUN``): a small HTTP server and a plain HTML/JS page.

:mod:`vaekit.serve.plane` is the math of the plane through the latent space;
:mod:`vaekit.serve.server` the server and its JSON API; ``static/`` the page (no build
step, nothing fetched from the internet).
"""

from vaekit.serve.plane import Plane, axis_plane, pca_plane, to_latent, to_plane
from vaekit.serve.server import Explorer, make_server, render_png

__all__ = ["Plane", "axis_plane", "pca_plane", "to_latent", "to_plane", "Explorer", "make_server", "render_png"]
