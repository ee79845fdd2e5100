"""Multi-host training on one machine: two JAX processes (CPU, gloo collectives, coordinator
on 127.0.0.1) run `coderl finetune` on one workdir. Both end with identical params, equal to
a one-process run's; orbax writes the checkpoints collectively, process 0 alone the logs.
"""

import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from coderl_jax import checkpoints
from coderl_jax.training import loop
from training_utils import (TINY_BINDINGS, free_port, last_per_step, make_problems,
                            make_tokenizer, subprocess_env)

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")
NUM_PROCESSES = 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("multihost")
    data, problems = make_problems(d)
    return d, data, make_tokenizer(d, problems)


def worker_cmd(params_out, workdir, data, tok):
    return [sys.executable, str(WORKER), str(params_out), "finetune", "--workdir", str(workdir),
            "--dataset", "synthetic", "--data", str(data), "--tokenizer", str(tok),
            *TINY_BINDINGS, "--gin.finetune.eval_problems=0"]


META = ("process_index", "process_count")


def load_npz(path) -> tuple[dict, dict]:
    """(params by path, {process_index, process_count}) of a worker's dump."""
    with np.load(path) as f:
        return ({k: f[k] for k in f.files if k not in META},
                {k: int(f[k]) for k in META})


def model_dir_params(model_dir) -> dict:
    import jax

    _, params = checkpoints.load_model_dir(model_dir)
    return {"/".join(str(k.key) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def assert_params_close(a: dict, b: dict, **tolerance) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], err_msg=key, **tolerance)


def test_two_processes_train_like_one(setup):
    d, data, tok = setup
    single = d / "one_process"
    subprocess.run(worker_cmd(d / "single.npz", single, data, tok), env=subprocess_env(),
                   check=True, capture_output=True, text=True, timeout=300)

    workdir = d / "two_processes"
    port = free_port()
    procs, logs = [], []
    for index in range(NUM_PROCESSES):
        env = subprocess_env(COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                             JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
                             NUM_PROCESSES=str(NUM_PROCESSES), PROCESS_ID=str(index))
        log = open(d / f"process_{index}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(worker_cmd(d / f"p{index}.npz", workdir, data, tok),
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        # A process that fails leaves the other waiting in a collective: stop at the first.
        deadline = time.monotonic() + 300
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
        codes = [p.poll() for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for log in logs:
            log.close()
    outputs = [(d / f"process_{i}.log").read_text() for i in range(NUM_PROCESSES)]
    assert codes == [0] * NUM_PROCESSES, "\n\n".join(o[-3000:] for o in outputs)

    dumps, metas = zip(*(load_npz(d / f"p{i}.npz") for i in range(NUM_PROCESSES)))
    assert metas == tuple({"process_index": i, "process_count": NUM_PROCESSES}
                          for i in range(NUM_PROCESSES))
    # Every process holds the same params, bit for bit ...
    assert_params_close(dumps[0], dumps[1], rtol=0, atol=0)
    # ... and the model dir holds them too.
    assert_params_close(dumps[0], model_dir_params(workdir / "model"), rtol=0, atol=0)
    # Two processes, each with half of every batch, train as one process with all of it
    # (only the order of float sums differs; Adam's m/sqrt(v) scales rounding up to ~1e-5
    # where a gradient is tiny, against updates of up to 3 x lr = 6e-3).
    one, meta = load_npz(d / "single.npz")
    assert meta["process_count"] == 1
    assert_params_close(dumps[0], one, rtol=1e-4, atol=5e-5)
    assert_params_close(model_dir_params(single / "model"), one, rtol=0, atol=0)
    two_losses = last_per_step(loop.read_metrics(workdir))
    one_losses = last_per_step(loop.read_metrics(single))
    assert sorted(two_losses) == [1, 2, 3]
    for step, loss in one_losses.items():
        assert abs(two_losses[step] - loss) <= 1e-5, (step, two_losses[step], loss)

    # Process 0 alone logs: each step once in metrics.jsonl, one TensorBoard event file.
    steps = [r["step"] for r in loop.read_metrics(workdir) if "loss" in r]
    assert steps == [1, 2, 3]
    assert len(list((workdir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    store = checkpoints.CheckpointStore(workdir / loop.CHECKPOINT_DIR, read_only=True)
    assert store.all_steps() == [2, 3]
    assert all("[finetune] wrote" in o for o in outputs)
