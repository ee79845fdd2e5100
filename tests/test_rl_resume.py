"""Online RL resumes exactly: `coderl train-rl` killed with SIGKILL mid-run (at step 6 of
10) and run again on its workdir continues from its last checkpoint, the remaining steps'
losses equal an uninterrupted run's, and no sandbox process of the killed run survives.

What makes it exact: the train state (params, optimizer, step, rng) and the data position
(problem batches consumed) are checkpointed; the sampling key of a step is derived from
(seed, data position), so the resumed run samples the programs the uninterrupted run did,
and the sandbox judges them alike.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import rl_utils
from coderl_jax.training import loop

STEPS, KILL_AT, CHECKPOINT_PERIOD = 10, 6, 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return rl_utils.session_setup(tmp_path_factory)


def command(setup, workdir):
    return [sys.executable, "-m", "coderl_jax", "train-rl", "--workdir", str(workdir),
            "--actor", str(setup.actor), "--critic", str(setup.critic), "--dataset",
            "synthetic", "--data", str(setup.data),
            *rl_utils.cli_gin_flags(TRAIN_STEPS=STEPS, CHECKPOINT_PERIOD=CHECKPOINT_PERIOD,
                                    KEEP_CHECKPOINTS=2, NUM_SAMPLES=2, ESTIMATOR="coderl")]


def losses(workdir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in loop.read_metrics(workdir) if "loss" in r}


def logged_steps(workdir) -> list[int]:
    try:
        return sorted(losses(workdir))
    except (FileNotFoundError, ValueError):  # not there yet / a line being written
        return []


def test_sigkilled_run_resumes_with_the_losses_of_an_uninterrupted_run(setup, tmp_path):
    env = rl_utils.coderl_env(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
                              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                              **rl_utils.FAST_COMPILES)
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(command(setup, reference), env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = losses(reference)
    assert sorted(expected) == list(range(1, STEPS + 1))

    workdir = tmp_path / "killed"
    marker = str(setup.root)  # in the workers' command line: the hidden problems dir
    proc = subprocess.Popen(command(setup, workdir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (logged_steps(workdir) and logged_steps(workdir)[-1] >= KILL_AT):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, f"step {KILL_AT} not reached in 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    kept = rl_utils.finished_steps(workdir / loop.CHECKPOINT_DIR)
    assert kept and KILL_AT - CHECKPOINT_PERIOD <= kept[-1] < STEPS, kept
    assert not (workdir / "model").exists()
    # Nothing the killed run started survives it: sandbox workers, the programs they forked.
    deadline = time.monotonic() + 10
    while rl_utils.sandbox_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rl_utils.sandbox_processes(marker) == []

    resumed = subprocess.run(command(setup, workdir), env=env, capture_output=True,
                             text=True, timeout=600)
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, text[-3000:]
    assert f"(step {kept[-1]}, data position {kept[-1]})" in text, text[-3000:]
    got = losses(workdir)
    assert sorted(got) == list(range(1, STEPS + 1))  # each step logged once
    assert [s for s in got if s > kept[-1]]
    for step in got:
        assert abs(got[step] - expected[step]) <= 1e-6, (step, got[step], expected[step])
    assert rl_utils.sandbox_processes(marker) == []
