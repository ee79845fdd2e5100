"""The RL stage end to end on a tiny warm-started actor (tests/rl_utils.py):

* online and offline RL give the same update for the same samples and verdicts;
* Ctrl-C / SIGTERM mid-step: the run stops within seconds, its last checkpoint restores,
  no sandbox process survives, and the same command resumes;
* `coderl train-rl --help`, and a bad estimator name failing at start-up (exit 2).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import rl_utils
from coderl_jax import checkpoints
from coderl_jax.rl import rollout, source
from coderl_jax.training import loop


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return rl_utils.session_setup(tmp_path_factory)


def flat_params(model_dir) -> dict:
    _, params = checkpoints.load_model_dir(model_dir)
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_online_and_offline_modes_give_the_same_update(setup, tmp_path, monkeypatch):
    built = []
    original = source.build_rl_batch

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        built.append(out)
        return out

    monkeypatch.setattr(source, "build_rl_batch", recording)
    # D with a (random, frozen) critic, the CE rows and the KL term all on: every input of
    # the batch is exercised.
    bindings = rl_utils.gin_bindings(TRAIN_STEPS=1, NUM_SAMPLES=2, ESTIMATOR="D",
                                     **{"RLConfig.save_rollouts": True,
                                        "RLConfig.kl_coef": 0.05})
    online = tmp_path / "online"
    rl_utils.run_train_rl(online, setup, bindings, critic=str(setup.critic))
    rollouts = sorted((online / rollout.ROLLOUT_DIR).iterdir())
    assert [p.name for p in rollouts] == ["step_000000.p0.jsonl"]
    records = [json.loads(line) for line in rollouts[0].read_text().splitlines()]
    assert len(records) == rl_utils.PROBLEMS * 3  # 2 samples + the greedy baseline each
    assert all(len(r["tokens"]) >= 1 and isinstance(r["code"], str) for r in records)

    files = rl_utils.rollouts_to_files(rollouts[0], tmp_path / "files")
    offline = tmp_path / "offline"
    rl_utils.run_train_rl(offline, setup, bindings, critic=str(setup.critic),
                          samples=str(files["samples"]), results=str(files["results"]),
                          baseline_samples=str(files["baseline_samples"]),
                          baseline_results=str(files["baseline_results"]))
    assert not (offline / rollout.ROLLOUT_DIR).exists()

    (on_batch, on_stats), (off_batch, off_stats) = built
    for name in on_batch.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(on_batch, name), getattr(off_batch, name),
                                      err_msg=name)
    assert on_stats == off_stats
    assert np.count_nonzero(on_batch.token_weights) > 0
    assert np.count_nonzero(on_batch.kl_weights) > 0
    assert on_stats["rl_rows"] + on_stats["dropped_internal"] == rl_utils.PROBLEMS * 2

    a, b = flat_params(online / "model"), flat_params(offline / "model")
    start = flat_params(setup.actor)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)
    assert any(not np.array_equal(a[k], start[k]) for k in a)  # the update did something


# ------------------------------------------------------------------ the command line
def coderl(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "coderl_jax", *args], capture_output=True,
                          text=True, env=rl_utils.coderl_env(**rl_utils.FAST_COMPILES),
                          **kwargs)


def test_help_lists_the_flags():
    out = coderl("train-rl", "--help", timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--workdir", "--actor", "--critic", "--samples", "--baseline-results"):
        assert flag in out.stdout


def test_bad_estimator_fails_at_start_up(tmp_path):
    # The actor does not exist: the estimator must be rejected before anything is loaded.
    out = coderl("train-rl", "--workdir", str(tmp_path / "w"), "--actor",
                 str(tmp_path / "missing"), "--dataset", "synthetic",
                 "--gin.ESTIMATOR='E'", "--gin.TRAIN_STEPS=1", timeout=120)
    assert out.returncode == 2, out.stderr
    assert "unknown return estimator 'E'" in out.stderr
    assert "Traceback" not in out.stderr


STOP_STEPS = 100  # never reached: the run is stopped


def train_rl_cmd(setup, workdir, steps=STOP_STEPS):
    return [sys.executable, "-m", "coderl_jax", "train-rl", "--workdir", str(workdir),
            "--actor", str(setup.actor), "--dataset", "synthetic", "--data", str(setup.data),
            *rl_utils.cli_gin_flags(TRAIN_STEPS=steps, CHECKPOINT_PERIOD=1, KEEP_CHECKPOINTS=2,
                                    **{"RLConfig.timeout": 1.0})]


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """One persistent compilation cache for the subprocess runs (they compile alike)."""
    return tmp_path_factory.mktemp("jax_cache")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_mid_step_keeps_the_checkpoint_and_leaves_no_sandbox_process(
        setup, tmp_path, compile_cache, signum):
    workdir = tmp_path / "run"
    env = rl_utils.coderl_env(JAX_COMPILATION_CACHE_DIR=str(compile_cache),
                              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                              **rl_utils.FAST_COMPILES)
    log = open(tmp_path / "log.txt", "w")
    proc = subprocess.Popen(train_rl_cmd(setup, workdir), env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    store_dir = workdir / loop.CHECKPOINT_DIR
    marker = str(setup.root)  # in the workers' command line: the hidden problems dir
    try:
        deadline = time.monotonic() + 240
        # Past a checkpoint, and the next step's programs running in the sandbox; after a
        # second checkpoint without catching one running, stop anyway.
        while not (rl_utils.finished_steps(store_dir)
                   and (rl_utils.sandbox_programs(marker)
                        or len(rl_utils.finished_steps(store_dir)) >= 2)):
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.002)
        workers = [p for p in rl_utils.descendants(proc.pid)
                   if rl_utils.WORKER_MARK in rl_utils.cmdline(p)]
        assert len(workers) >= 2
        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
        log.close()
    output = (tmp_path / "log.txt").read_text()
    assert code == 130, output[-3000:]
    assert took < 10, took
    assert "stopped; run the same command to resume" in output
    assert "Traceback" not in output
    # Nothing the run started survives it: sandbox workers, the programs they forked.
    deadline = time.monotonic() + 5
    while rl_utils.sandbox_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rl_utils.sandbox_processes(marker) == []

    steps = rl_utils.finished_steps(store_dir)
    assert steps and steps[-1] < STOP_STEPS and not (workdir / "model").exists()
    store = checkpoints.CheckpointStore(store_dir, read_only=True)
    restored = store.restore(steps[-1], ["params"])
    assert restored["metadata"]["data_position"] == steps[-1]
    assert jax.tree.leaves(restored["params"])

    if signum == signal.SIGTERM:  # once: the same command resumes and finishes
        resumed = subprocess.run(train_rl_cmd(setup, workdir, steps=steps[-1] + 1), env=env,
                                 capture_output=True, text=True, timeout=300)
        text = resumed.stdout + resumed.stderr
        assert resumed.returncode == 0, text[-3000:]
        found = re.search(r"resumed from (\S+) \(step (\d+), data position (\d+)\)", text)
        assert found and int(found.group(2)) == steps[-1], text[-3000:]
        assert (workdir / "model").is_dir()
        logged = [r["step"] for r in loop.read_metrics(workdir)]
        assert logged == sorted(set(logged)) and logged[-1] == steps[-1] + 1
