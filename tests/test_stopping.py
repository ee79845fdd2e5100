"""The warm start's stopping rule on stub metric sequences."""

import pytest

from coderl_jax.training.stopping import EarlyStopping, Patience


def run(cfg, values):
    tracker = Patience(cfg)
    for i, v in enumerate(values):
        step = (i + 1) * 100
        if tracker.update(step, {cfg.metric: v, "other": 0.0}):
            return step, tracker
    return None, tracker


def test_pass_rate_stops_after_patience_evaluations_without_improvement():
    cfg = EarlyStopping(metric="heldout_greedy_pass@1", patience=2)
    stop, t = run(cfg, [0.1, 0.3, 0.5, 0.45, 0.5, 0.6])
    # 0.45 and 0.5 (equal, not better) are the two bad evaluations: stop at the 5th.
    assert stop == 500 and (t.best_step, t.best_value) == (300, 0.5)


def test_nll_is_minimised_and_min_delta_counts():
    cfg = EarlyStopping(metric="heldout_nll", patience=2, min_delta=0.01)
    assert not cfg.maximize
    stop, t = run(cfg, [0.9, 0.5, 0.495, 0.3, 0.295, 0.299])
    # 0.495 is within min_delta (bad 1), 0.3 improves (reset), 0.295 and 0.299 bad -> stop.
    assert stop == 600 and (t.best_step, t.best_value) == (400, 0.3)


def test_never_stopping_keeps_the_best_and_off_by_default():
    stop, t = run(EarlyStopping(metric="acc", mode="max", patience=3), [0.1, 0.2, 0.1, 0.3])
    assert stop is None and t.best_step == 400 and t.improved
    assert not EarlyStopping().enabled


def test_missing_metric_and_bad_settings_are_errors():
    with pytest.raises(ValueError, match="watches 'x'"):
        Patience(EarlyStopping(metric="x")).update(1, {"y": 1.0})
    with pytest.raises(ValueError):
        EarlyStopping(metric="x", patience=0)
    with pytest.raises(ValueError):
        EarlyStopping(metric="x", mode="up")


def test_finetune_stops_early_and_keeps_the_best(tmp_path):
    """`coderl finetune` with the rule bound in gin: held-out NLL watched as "max" (it falls,
    so only the first evaluation is the best) with patience 1 stops at the 2nd evaluation
    and ends with the first evaluation's params."""
    import subprocess
    import sys

    from training_utils import (TINY_BINDINGS, make_problems, make_tokenizer, read_jsonl,
                                subprocess_env)

    data, problems = make_problems(tmp_path)
    tok = make_tokenizer(tmp_path, problems)
    workdir = tmp_path / "warm"
    cmd = [sys.executable, "-m", "coderl_jax", "finetune", "--workdir", str(workdir),
           "--dataset", "synthetic", "--data", str(data), "--tokenizer", str(tok),
           *TINY_BINDINGS, "--gin.TRAIN_STEPS=10", "--gin.EVAL_PERIOD=2",
           "--gin.finetune.eval_problems=0", f"--gin.finetune.eval_data='{data}'",
           "--gin.finetune.stopping=@EarlyStopping()",
           "--gin.EarlyStopping.metric='heldout_nll'", "--gin.EarlyStopping.mode='max'",
           "--gin.EarlyStopping.patience=1", "--gin.SCHEDULE='linear'"]
    out = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "early stop at step 4" in text and "keeping the params of step 2" in text
    steps = [r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if "eval/heldout_nll" in r]
    assert steps == [2, 4]
    assert (workdir / "model").is_dir()
    # eval_data: every problem trains and the given file is the held-out set.
    assert f"from {len(problems)} problems" in text and f"{len(problems)} held out" in text
