"""The critic's report beside its majority-class baseline, and its class weighting."""

import numpy as np
import pytest

from coderl_jax.training import batch as batch_lib
from coderl_jax.training.critic import class_weights
from coderl_jax.training.evaluation import confusion_summary


def test_confusion_summary_by_hand():
    # true FailedTest 8 (predicted: 7 Failed, 1 Passed), true PassedTest 2 (both Failed).
    s = confusion_summary([[7, 1], [2, 0]], ("FailedTest", "PassedTest"))
    assert s["accuracy"] == pytest.approx(0.7)
    assert s["majority_baseline"] == pytest.approx(0.8) and s["majority_class"] == "FailedTest"
    assert s["recall"] == {"FailedTest": pytest.approx(7 / 8), "PassedTest": 0.0}
    assert s["balanced_accuracy"] == pytest.approx((7 / 8 + 0) / 2)
    four = confusion_summary(np.zeros((4, 4)) + np.diag([3, 0, 1, 0]), ("a", "b", "c", "d"))
    assert four["recall"]["b"] is None and four["balanced_accuracy"] == 1.0
    assert four["majority_baseline"] == 0.75


def test_class_weights_none_and_balanced():
    labels = [0, 0, 0, 2, 3]
    np.testing.assert_array_equal(class_weights(labels, 4, "none"), [1, 1, 1, 1])
    # N / (C_present * count): 5 / (3 * 3), 0 (absent), 5 / 3, 5 / 3
    np.testing.assert_allclose(class_weights(labels, 4, "balanced"), [5 / 9, 0, 5 / 3, 5 / 3])
    with pytest.raises(ValueError, match="class_weighting"):
        class_weights(labels, 4, "inverse")


def test_critic_batch_carries_the_class_weights():
    rows = [{"inputs": [1, 2], "targets": [3, 2], "label": 0, "class_weight": 0.5},
            {"inputs": [1, 2], "targets": [4, 2], "label": 1}]
    b = batch_lib.critic_batch(rows, 3, 4, 4)
    np.testing.assert_allclose(b.label_weights, [0.25, 0.5, 0.0])
