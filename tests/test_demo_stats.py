"""`demo/stats.py` on hand-made per-problem data."""

import json

import numpy as np
import pytest

from coderl_jax.demo import stats


def report(per_a, per_b, p1_a, p1_b):
    systems = {"ce": {"pass@1": 1.0, "per_problem": {}},
               "coderl_cs": {"pass@1": 2.0, "per_problem": {}}}
    return {**systems, "coderl": {"pass@1": p1_a, "per_problem": per_a},
            "ce_plus": {"pass@1": p1_b, "per_problem": per_b}}


def test_paired_differences_and_pooled_mean_by_hand():
    r0 = report({"a": 1.0, "b": 0.5, "c": 0.0}, {"a": 0.5, "b": 0.5, "c": 0.25, "x": 1.0},
                50.0, 40.0)
    r1 = report({"d": 0.75}, {"d": 0.25}, 75.0, 25.0)
    diffs = stats.paired_differences([r0, r1], "coderl", "ce_plus")
    np.testing.assert_allclose(diffs[0], [50.0, 0.0, -25.0])  # "x" is unpaired: left out
    np.testing.assert_allclose(diffs[1], [50.0])
    test = stats.paired_bootstrap(diffs, resamples=2000)
    assert test["mean_difference"] == pytest.approx((50 + 0 - 25 + 50) / 4)
    assert (test["problems"], test["seeds"]) == (4, 2)
    low, high = test["interval"]
    assert -25.0 <= low <= test["mean_difference"] <= high <= 50.0


def test_bootstrap_interval_of_constant_and_of_zero_differences():
    test = stats.paired_bootstrap([np.full(5, 10.0), np.full(3, 10.0)], resamples=500)
    assert test["interval"] == [10.0, 10.0] and test["share_at_or_below_zero"] == 0.0
    test = stats.paired_bootstrap([np.zeros(4)], resamples=100)
    assert test["share_at_or_below_zero"] == 1.0
    # Symmetric +-1 differences: the interval straddles 0, about half the resamples <= 0.
    test = stats.paired_bootstrap([np.array([1.0, -1.0] * 20)], resamples=4000, seed=1)
    assert test["interval"][0] < 0 < test["interval"][1]
    assert 0.4 < test["share_at_or_below_zero"] < 0.65
    with pytest.raises(ValueError):
        stats.paired_bootstrap([np.zeros(0)])


def test_summary_and_main_over_seed_workdirs(tmp_path, capsys):
    reports = [report({"a": 1.0}, {"a": 0.0}, 30.0, 20.0),
               report({"a": 1.0}, {"a": 0.5}, 40.0, 30.0)]
    summary = stats.system_summary(reports, ["pass@1"])
    assert summary["coderl"]["pass@1"]["mean"] == 35.0
    assert summary["coderl"]["pass@1"]["std"] == pytest.approx(np.std([30, 40], ddof=1))
    paths = []
    for i, r in enumerate(reports):
        d = tmp_path / f"seed{i}"
        d.mkdir()
        (d / "report.json").write_text(json.dumps(r))
        paths.append(str(d))
    out = tmp_path / "stats.json"
    assert stats.main([*paths, "--resamples", "200", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 seed(s)" in text and "paired bootstrap coderl - ce_plus" in text
    written = json.loads(out.read_text())
    assert written["paired_bootstrap"]["mean_difference"] == pytest.approx(75.0)
