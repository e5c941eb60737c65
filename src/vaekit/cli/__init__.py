"""The ``vaekit`` command line: ``main`` (the entry point) and one module per group of commands.

* :mod:`vaekit.cli.main`: the parser, the entry point and the one-line error handling;
* :mod:`vaekit.cli._common`: settings, argument types and data loading every command shares;
* :mod:`vaekit.cli.training`: ``models``, ``train``, ``demo``;
* :mod:`vaekit.cli.inspection`: ``eval``, ``sample``, ``reconstruct``, ``traverse``, ``interpolate``;
* :mod:`vaekit.cli.applications`: ``compress``, ``classify``, ``anomaly``, ``denoise``.

Imports point one way: ``main`` → command modules → ``_common``; nothing in vaekit imports the CLI.
"""

from vaekit.cli.main import main

__all__ = ["main"]
