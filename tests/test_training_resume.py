"""Resume: `coderl finetune` killed with SIGKILL after a checkpoint and started again on the
same workdir continues from the last checkpoint, and the steps after the resume have the
losses of an uninterrupted run (same seed: same data order, dropout keys and optimizer state).
"""

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from coderl_jax.training import loop
from training_utils import (TINY_BINDINGS, last_per_step, make_problems, make_tokenizer,
                            subprocess_env)

STEPS = 12
CHECKPOINT_PERIOD = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    data, problems = make_problems(d)
    tok = make_tokenizer(d, problems)
    # Every run here compiles the same programs: compile them once (persistent cache).
    env = subprocess_env(JAX_COMPILATION_CACHE_DIR=str(d / "jax_cache"),
                         JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return d, data, tok, env


def finetune_cmd(workdir, data, tok):
    # Dropout on and a warmup schedule: a resumed run must restore the dropout keys, the
    # step-dependent learning rate and the optimizer moments, not only the params.
    return [sys.executable, "-m", "coderl_jax", "finetune", "--workdir", str(workdir),
            "--dataset", "synthetic", "--data", str(data), "--tokenizer", str(tok),
            *TINY_BINDINGS, f"--gin.TRAIN_STEPS={STEPS}",
            f"--gin.CHECKPOINT_PERIOD={CHECKPOINT_PERIOD}", "--gin.KEEP_CHECKPOINTS=2", "--gin.finetune.eval_problems=0",
            "--gin.T5Config.dropout_rate=0.1", "--gin.SCHEDULE='linear'",
            "--gin.WARMUP_STEPS=4"]


def finished_checkpoints(workdir) -> list[int]:
    """Steps orbax has finalised (an in-progress save lives in a temporary name)."""
    directory = workdir / loop.CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def logged_steps(workdir) -> list[int]:
    path = workdir / loop.METRICS_FILE
    if not path.is_file():
        return []
    return [r["step"] for r in last_per_step_records(path.read_text())]


def last_per_step_records(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return [r for r in out if "loss" in r]


def test_killed_run_resumes_with_the_losses_of_an_uninterrupted_run(setup):
    d, data, tok, env = setup
    reference = d / "uninterrupted"
    subprocess.run(finetune_cmd(reference, data, tok), env=env, check=True,
                   capture_output=True, text=True, timeout=300)
    expected = last_per_step(loop.read_metrics(reference))
    assert sorted(expected) == list(range(1, STEPS + 1))

    workdir = d / "killed"
    proc = subprocess.Popen(finetune_cmd(workdir, data, tok), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Killed once it has logged a step past its first checkpoint, so the workdir holds
        # records of steps that the resumed run redoes.
        deadline = time.monotonic() + 240
        while not (finished_checkpoints(workdir) and logged_steps(workdir)
                   and logged_steps(workdir)[-1] > CHECKPOINT_PERIOD):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    kept = finished_checkpoints(workdir)
    assert kept and kept[-1] < STEPS, f"killed too late to test a resume: {kept}"
    assert logged_steps(workdir)[-1] > kept[-1]
    assert not (workdir / "model").exists()

    resumed = subprocess.run(finetune_cmd(workdir, data, tok), env=env, check=True,
                             capture_output=True, text=True, timeout=300)
    found = re.search(r"resumed from (\S+) \(step (\d+)", resumed.stdout + resumed.stderr)
    assert found, resumed.stdout + resumed.stderr
    start = int(found.group(2))
    assert found.group(1).endswith(f"{loop.CHECKPOINT_DIR}/{start}") and start >= kept[-1]
    assert start < STEPS

    records = [r for r in loop.read_metrics(workdir) if "loss" in r]
    # The records the killed run wrote past its checkpoint were dropped on resume: each step
    # is logged once, and the steps up to the checkpoint are the killed run's.
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    losses = last_per_step(records)
    after = [s for s in losses if s > start]
    assert after
    for step in losses:
        assert abs(losses[step] - expected[step]) <= 1e-5, (step, losses[step], expected[step])
    assert (workdir / "model" / "config.json").is_file()
