"""Benchmark suites: every applicable preset trained and measured with one body and one budget (``vaekit bench``).

* :mod:`vaekit.bench.fashion`: ``fashion-mnist``: every preset on binarised Fashion-MNIST:
  test log p(x), ELBO, reconstruction, FD / precision / recall of samples, active units,
  codebook perplexity, cluster NMI, wall time;
* :mod:`vaekit.bench.disentanglement`: ``sprites``: five models × seeds, the five
  disentanglement metrics (mean ± sd), traversals;
* :mod:`vaekit.bench.applications`: ``apps``: k-NN on codes, compression against PCA,
  anomaly AUROC;
* :mod:`vaekit.bench.runner`: run folders (``OUT/<model>/seed<k>``, resumed or skipped),
  progress lines, the Markdown table and the JSON record;
* :mod:`vaekit.bench.suites`: the suites by name and :func:`make_plan` (everything checked
  before anything is written).

Layer: at the top of the stack, beside the CLI. It may import ``apps``, ``eval``,
``samplers``, ``viz``, ``train``, ``models``, ``data``; nothing but ``vaekit.cli`` imports it.

Example:
    >>> plan = make_plan("fashion-mnist", quick=True, models=["vae", "ae"], out="runs/bench-quick")  # doctest: +SKIP
    >>> summary = run_suite(plan, command="vaekit bench --suite fashion-mnist --quick", say=print)  # doctest: +SKIP
"""

from vaekit.bench.runner import Plan, run_suite
from vaekit.bench.spec import Budget, Context, Entry, Suite
from vaekit.bench.suites import DEFAULT_OUT, SUITES, make_plan

__all__ = ["SUITES", "make_plan", "run_suite", "Plan", "Suite", "Entry", "Budget", "Context", "DEFAULT_OUT"]
