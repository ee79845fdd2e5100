"""Results rows judged by the sandbox may reach the metrics in any order (pooled workers,
concatenated files); n@k breaks ties by sample order, so it must follow `sample_index`,
never the order of the rows. (The metrics themselves: tests/test_metrics.py.)"""

from coderl_jax import metrics
from coderl_jax.outcomes import FAILED_TEST, PASSED_TEST


def _rows(outcomes, order):
    return [{"task_id": "t", "sample_index": i, "outcome": outcomes[i], "error_type": None}
            for i in order]


def test_n_at_k_follows_sample_index_not_row_order():
    # Samples 0 and 1 both pass the example tests; only sample 1 passes the hidden tests.
    # 1@2 submits the first in sample order, sample 0: not solved.
    hidden = [FAILED_TEST, PASSED_TEST, FAILED_TEST]
    example = [PASSED_TEST, PASSED_TEST, FAILED_TEST]
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0]):  # both files shuffled alike
        report = metrics.evaluate(_rows(hidden, order), ks=[1], n_at_k=[(1, 2)],
                                  example_rows=_rows(example, order))
        assert report["n@k"] == {"1@2": 0.0}, order
        groups = metrics.group_by_task(_rows(hidden, order))
        assert [r["sample_index"] for r in groups["t"]] == [0, 1, 2]
