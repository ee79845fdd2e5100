"""Multi-host online RL on one machine: two JAX processes (CPU, gloo collectives, coordinator
on 127.0.0.1) run `coderl train-rl` on one workdir. Each samples its half of every problem
batch and judges it with its own sandbox pool; the update is one global step, so both end
with the same actor params, bit for bit, and those are what the model dir holds.
"""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import rl_utils
from coderl_jax import checkpoints
from coderl_jax.rl import rollout
from coderl_jax.training import loop

WORKER = pathlib.Path(__file__).with_name("rl_multihost_worker.py")
NUM_PROCESSES, STEPS, PER_STEP = 2, 3, 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return rl_utils.session_setup(tmp_path_factory)


def load_npz(path) -> tuple[dict, dict]:
    meta_keys = ("process_index", "process_count", "step")
    with np.load(path) as f:
        return ({k: f[k] for k in f.files if k not in meta_keys},
                {k: int(f[k]) for k in meta_keys})


def test_two_processes_end_with_the_same_actor(setup, tmp_path):
    workdir = tmp_path / "run"
    port = rl_utils.free_port()
    flags = rl_utils.cli_gin_flags(
        TRAIN_STEPS=STEPS, CHECKPOINT_PERIOD=2, PROBLEMS_PER_STEP=PER_STEP, NUM_SAMPLES=2,
        ESTIMATOR="D", **{"RLConfig.workers": 1, "RLConfig.save_rollouts": True})
    procs, logs = [], []
    for index in range(NUM_PROCESSES):
        env = rl_utils.coderl_env(COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                  JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
                                  NUM_PROCESSES=str(NUM_PROCESSES), PROCESS_ID=str(index),
                                  **rl_utils.FAST_COMPILES)
        cmd = [sys.executable, str(WORKER), str(tmp_path / f"p{index}.npz"), "train-rl",
               "--workdir", str(workdir), "--actor", str(setup.actor), "--critic",
               str(setup.critic), "--dataset", "synthetic", "--data", str(setup.data), *flags]
        logs.append(open(tmp_path / f"process_{index}.log", "w"))
        procs.append(subprocess.Popen(cmd, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for log in logs:
            log.close()
    outputs = [(tmp_path / f"process_{i}.log").read_text() for i in range(NUM_PROCESSES)]
    assert codes == [0] * NUM_PROCESSES, "\n\n".join(o[-3000:] for o in outputs)

    dumps = [load_npz(tmp_path / f"p{i}.npz") for i in range(NUM_PROCESSES)]
    assert [m for _, m in dumps] == [{"process_index": i, "process_count": NUM_PROCESSES,
                                      "step": STEPS} for i in range(NUM_PROCESSES)]
    (a, _), (b, _) = dumps
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    _, saved = checkpoints.load_model_dir(workdir / "model")
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]:
        np.testing.assert_array_equal(np.asarray(leaf), a[jax.tree_util.keystr(key_path)])
    _, start = checkpoints.load_model_dir(setup.actor)
    assert any(not np.array_equal(np.asarray(leaf), a[jax.tree_util.keystr(k)])
               for k, leaf in jax.tree_util.tree_flatten_with_path(start)[0])

    # Each process sampled its own half of every step's problems.
    rollouts = workdir / rollout.ROLLOUT_DIR
    for step in range(STEPS):
        halves = [{json.loads(line)["task_id"] for line in
                   (rollouts / f"step_{step:06d}.p{i}.jsonl").read_text().splitlines()}
                  for i in range(NUM_PROCESSES)]
        assert [len(h) for h in halves] == [PER_STEP // NUM_PROCESSES] * NUM_PROCESSES
        assert not halves[0] & halves[1]
    # Process 0 alone logs; checkpoints are written once, collectively.
    assert [r["step"] for r in loop.read_metrics(workdir)] == list(range(1, STEPS + 1))
    store = checkpoints.CheckpointStore(workdir / loop.CHECKPOINT_DIR, read_only=True)
    assert store.all_steps() == [2, 3]
    assert all("[train-rl] wrote" in o for o in outputs)
