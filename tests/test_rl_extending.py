"""The open registries from outside the package: README's "Extending" snippet (a return
estimator and a reward in a user's own module, selected by a gin file that imports it) is
run exactly as written, in process (hand-computed weights and rewards) and through
`coderl train-rl --gin_file mine.gin` (one training step with them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import rl_utils
from coderl_jax import checkpoints, outcomes
from coderl_jax.rl import returns, rewards

README = rl_utils.REPO_ROOT / "README.md"


def extending_blocks() -> dict[str, str]:
    """The ```python and ```gin blocks of README's "Extending" section."""
    text = README.read_text().split("\n## Extending\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"```(python|gin)\n(.*?)```", text, re.S))


@pytest.fixture
def registered():
    """README's module executed here; its registrations removed afterwards."""
    namespace: dict = {}
    exec(compile(extending_blocks()["python"], "my_rl.py", "exec"), namespace)
    yield namespace
    returns.ESTIMATORS.pop("clipped", None)
    rewards.REWARDS.pop("pass_or_crash", None)


def test_the_snippet_registers_an_estimator_and_a_reward(registered):
    r, b = np.array([1.0, -1.0, -0.3]), np.array([-0.3, -0.3, -0.3])
    mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]], np.float32)
    q = np.full((3, 3), 0.5)
    w = returns.token_weights("clipped", sample_returns=r, baseline_returns=b, mask=mask,
                              token_values=q, limit=0.3)
    np.testing.assert_allclose(w, np.array([[0.3, 0.3, 0], [-0.3, 0, 0], [0, 0, 0]]) * 0.5
                               * mask, atol=1e-7)
    with pytest.raises(ValueError, match="unknown option"):
        returns.token_weights("clipped", sample_returns=r, baseline_returns=b, mask=mask,
                              token_values=q, scale=2.0)
    with pytest.raises(ValueError, match="needs token_values"):
        returns.token_weights("clipped", sample_returns=r, baseline_returns=b, mask=mask)
    reward = rewards.make_reward("pass_or_crash", crash=-2.0)
    verdicts = [types.SimpleNamespace(outcome=o, passed=o == outcomes.PASSED_TEST)
                for o in (outcomes.PASSED_TEST, outcomes.RUNTIME_ERROR, outcomes.FAILED_TEST)]
    assert [reward(None, v) for v in verdicts] == [1.0, -2.0, 0.0]
    with pytest.raises(ValueError, match="already registered"):
        returns.register_estimator("coderl")(lambda batch: batch.mask)


def test_partial_credit_reward_counts_the_tests_passed():
    problem = types.SimpleNamespace(hidden_tests=(1, 2, 3, 4))
    verdict = types.SimpleNamespace(test_results=(True, True, False, True))
    assert rewards.make_reward("partial")(problem, verdict) == 0.75
    assert rewards.get_reward("partial").all_tests


def test_train_rl_with_the_snippet_selected_by_one_gin_file(tmp_path, tmp_path_factory):
    setup = rl_utils.session_setup(tmp_path_factory)
    blocks = extending_blocks()
    (tmp_path / "my_rl.py").write_text(blocks["python"])
    (tmp_path / "mine.gin").write_text(blocks["gin"])
    flags = [f for f in rl_utils.cli_gin_flags(TRAIN_STEPS=1, NUM_SAMPLES=2)
             if not f.startswith("--gin.ESTIMATOR=")]  # mine.gin chooses it
    workdir = tmp_path / "rl_mine"
    out = subprocess.run(
        [sys.executable, "-m", "coderl_jax", "train-rl", "--workdir", str(workdir),
         "--actor", str(setup.actor), "--critic", str(setup.critic), "--dataset",
         "synthetic", "--data", str(setup.data), "--gin_file", "mine.gin", *flags],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env=rl_utils.coderl_env(**rl_utils.FAST_COMPILES))
    assert out.returncode == 0, out.stderr[-3000:]
    store = checkpoints.CheckpointStore(workdir / "model" / "checkpoints", read_only=True)
    meta = store.restore(store.latest_step(), ["params"])["metadata"]
    assert meta["estimator"] == "clipped" and meta["reward"] == "pass_or_crash"
    [record] = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(record["loss"])
    # Returns are the new reward's: +1 per pass, -1 per crash, 0 per wrong answer.
    shares = {o: record[f"outcome/{o}"] for o in outcomes.OUTCOMES}
    expected = (shares[outcomes.PASSED_TEST] - shares[outcomes.COMPILE_ERROR]
                - shares[outcomes.RUNTIME_ERROR])
    assert record["sample_return"] == pytest.approx(expected)
