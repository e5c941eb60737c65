"""make_plan: budgets a suite cannot honour are refused before anything runs.

Needs Fashion-MNIST under /usr/share/datasets/fashion-mnist (or $VAEKIT_DATA).
"""

import pytest

from vaekit.bench import make_plan
from vaekit.errors import ConfigError


@pytest.mark.parametrize("suite", ["fashion-mnist", "apps"])
@pytest.mark.parametrize("sizes, words", [({"train_size": 60_001}, "60000 Fashion-MNIST training"),
                                          ({"test_size": 10_001}, "10000 Fashion-MNIST test")])
def test_more_images_than_fashion_mnist_holds_are_refused_not_cut_silently(suite, sizes, words):
    """A size above the set's would be cut to the set while the table's header names the size asked for."""
    with pytest.raises(ConfigError, match=words):
        make_plan(suite, quick=True, **sizes)


def test_the_whole_fashion_mnist_set_is_a_valid_budget():
    """Exactly 60 000 training and 10 000 test images are allowed."""
    plan = make_plan("fashion-mnist", quick=True, train_size=60_000, test_size=10_000)
    assert (plan.budget.train_size, plan.budget.test_size) == (60_000, 10_000)
