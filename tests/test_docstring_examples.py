"""Every ``Example:`` in vaekit's docstrings runs and prints what it shows (stale examples are wrong documentation)."""

import doctest
import importlib
import pkgutil

import pytest

import vaekit

MODULES = sorted(info.name for info in pkgutil.walk_packages(vaekit.__path__, "vaekit.") if not info.name.endswith("__main__"))


def test_the_package_has_docstring_examples():
    """The walk finds the package's modules, and they hold examples to run (190 when this test was written)."""
    found = sum(len(test.examples) for name in MODULES for test in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert len(MODULES) > 100 and found >= 150


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_and_show_their_output(name):
    """doctest on the module: each example that is not marked ``+SKIP`` gives the output written below it."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, report=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} fail: run python -m doctest -v on it"
