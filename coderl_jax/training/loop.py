"""The host loop around the train step: resume, checkpoints, logs, progress, evaluation.

    state = run_training(workdir=..., model=ActorModel(config), trainer=TrainerConfig(...),
                         optimizer=OptimizerConfig(...), init_params=lambda: params,
                         make_batches=lambda start: iterator_of_numpy_batches_from(start))

* Resume by default: when `workdir/checkpoints` holds a step, the whole state (params,
  optimizer, step, rng) is restored into its shardings and the data stream restarts at the
  checkpointed data position (`make_batches(start)` must be deterministic in `start`), so the
  steps after a resume are the steps an uninterrupted run would have taken.
* Checkpoints every `checkpoint_period` steps and at the end, the last `keep_checkpoints`
  kept (orbax, written collectively by all processes).
* Logs every `log_period` steps: one JSON line in `workdir/metrics.jsonl` and TensorBoard
  scalars in `workdir/tensorboard/` (process 0 only), with at least step, loss,
  learning_rate and tokens/s; a tqdm bar with steps/s and ETA.
* `eval_fn(state) -> dict` every `eval_period` steps and at the end, logged the same way
  under "eval/...".
* Multi-host: `maybe_initialize_distributed()` starts `jax.distributed` when the
  environment describes several processes; each process feeds its own rows
  (`process_rows`) and `batch.to_global` assembles the global batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gin
import jax
import numpy as np

from coderl_jax import checkpoints, partitioning
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import optimizer as optimizer_lib
from coderl_jax.training import state as state_lib
from coderl_jax.training import step as step_lib

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


@gin.configurable(module="coderl_jax.training")
@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """How long and how to train (bound by the run gin files' macros, e.g. %TRAIN_STEPS).

    batch_size is the GLOBAL batch (split over processes and the mesh's "data" axis);
    num_microbatches splits it further inside the step (gradient accumulation). mesh_data /
    mesh_model give the ("data", "model") mesh (-1: all devices not used by "model").
    """

    train_steps: int = 100
    batch_size: int = 8
    num_microbatches: int = 1
    checkpoint_period: int = 100
    keep_checkpoints: int = 2
    log_period: int = 10
    eval_period: int = 0
    seed: int = 0
    mesh_data: int = -1
    mesh_model: int = 1
    progress: bool = True

    def __post_init__(self):
        for name in ("train_steps", "batch_size", "num_microbatches", "checkpoint_period",
                     "keep_checkpoints", "log_period"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"TrainerConfig.{name} is required: bind it (the run files "
                                 f"set it from a macro, e.g. --gin.{name.upper()}=...), "
                                 f"got {getattr(self, name)!r}")
            if getattr(self, name) < 1:
                raise ValueError(f"TrainerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_microbatches:
            raise ValueError(f"TrainerConfig.batch_size {self.batch_size} is not divisible by "
                             f"num_microbatches {self.num_microbatches}")


def maybe_initialize_distributed() -> None:
    """`jax.distributed.initialize()` when the environment describes several processes
    (COORDINATOR_ADDRESS + NUM_PROCESSES + PROCESS_ID, or a cluster JAX detects itself)."""
    if jax.distributed.is_initialized():
        return
    address = os.environ.get("COORDINATOR_ADDRESS")
    if address:
        try:
            count, index = int(os.environ["NUM_PROCESSES"]), int(os.environ["PROCESS_ID"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"COORDINATOR_ADDRESS={address} is set, so NUM_PROCESSES and "
                             f"PROCESS_ID must be integers in the environment too ({e})") from None
        jax.distributed.initialize(address, count, index)


def sync_processes(name: str) -> None:
    """A barrier across processes (a no-op with one): work one process did, such as writing
    a file the others read, is done when every process leaves it."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def process_rows(rows: Sequence[Any]) -> list[Any]:
    """This process's contiguous share of a global batch's rows (process order)."""
    n, p = jax.process_count(), jax.process_index()
    if len(rows) % n:
        raise ValueError(f"a global batch of {len(rows)} rows does not split over {n} processes")
    share = len(rows) // n
    return list(rows[p * share:(p + 1) * share])


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of an epoch: a permutation drawn from (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def example_stream(examples: Sequence[Any], batch_size: int, seed: int,
                   start_batch: int = 0) -> Iterator[list[Any]]:
    """Global batches of `batch_size` examples, forever, epoch after epoch (each shuffled by
    (seed, epoch)); batch i is the same whatever `start_batch` the stream started from."""
    if not examples:
        raise ValueError("no training examples")
    n = len(examples)
    index = start_batch
    orders: dict[int, np.ndarray] = {}
    while True:
        first = index * batch_size
        rows = []
        for position in range(first, first + batch_size):
            epoch, offset = divmod(position, n)
            if epoch not in orders:
                orders = {e: o for e, o in orders.items() if e >= epoch - 1}
                orders[epoch] = epoch_order(n, seed, epoch)
            rows.append(examples[int(orders[epoch][offset])])
        yield rows
        index += 1


class MetricsWriter:
    """metrics.jsonl + TensorBoard scalars in a workdir; a no-op on processes other than 0.

    resumed_step: the step a resumed run restarts from. Records of later steps (written by
    the interrupted run after its last checkpoint, and about to be redone) and a torn last
    line are dropped, so metrics.jsonl holds each step once, as TensorBoard purges the
    steps past a restart.
    """

    def __init__(self, workdir: str | os.PathLike, resumed_step: int | None = None):
        self.enabled = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / METRICS_FILE
        self._tb = None
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resumed_step is not None and self.path.is_file():
                self._drop_after(resumed_step)
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(pathlib.Path(workdir) / TENSORBOARD_DIR))

    def write(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step)}
        for key, value in values.items():
            value = np.asarray(value)
            record[key] = value.item() if value.ndim == 0 else value.tolist()
            if value.ndim == 0 and np.isfinite(value):
                self._tb.add_scalar(key, float(value), int(step))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def _drop_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn by a kill mid-write
            if isinstance(record, dict) and record.get("step", 0) <= step:
                kept.append(line + "\n")
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.path)


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The records of `workdir/metrics.jsonl` (one dict per logged step)."""
    path = pathlib.Path(workdir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def restore_state(store: checkpoints.CheckpointStore, step: int, model, tx,
                  shardings: state_lib.TrainState) -> tuple[state_lib.TrainState, dict]:
    """(TrainState, metadata) of checkpoint `step`, restored into `shardings`."""
    target = state_lib.abstract_state(shardings, model, tx)
    try:
        items = store.restore(step, {name: getattr(target, name)
                                     for name in state_lib.STATE_ITEMS})
    except (KeyError, ValueError, FileNotFoundError) as e:
        reason = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise checkpoints.CheckpointNotFoundError(
            f"cannot resume from {store.directory / str(step)}: {reason}\n(the checkpoint is "
            "damaged or was written by another model/optimizer config: delete that step "
            "directory to resume from an earlier one, or start a new --workdir)") from e
    return state_lib.items_to_state(items), items[checkpoints.METADATA_ITEM]


def open_state(workdir: pathlib.Path, model, trainer: TrainerConfig, tx,
               init_params: Callable[[], Any] | None, log: Callable[[str], None], desc: str):
    """-> (state, shardings, store, data position, mesh, resumed step or None): the state
    restored from the workdir's latest checkpoint, else created from `init_params()`
    (None: random init), on the trainer's mesh."""
    mesh = partitioning.make_mesh(trainer.mesh_data, trainer.mesh_model)
    store = checkpoints.CheckpointStore(workdir / CHECKPOINT_DIR,
                                        max_to_keep=trainer.keep_checkpoints)
    latest = store.latest_step()
    if latest is None:
        # As host arrays: each process then places its own shards of the same values (a
        # device array would need a cross-host transfer to reach another process's devices).
        params = None if init_params is None else jax.device_get(init_params())
        state, shardings = state_lib.create_state(model, tx, mesh, trainer.seed, params)
        return state, shardings, store, 0, mesh, None
    abstract_params = jax.eval_shape(model.init, jax.random.key(0))
    param_shardings = partitioning.logical_to_shardings(model.logical_axes(), mesh)
    shardings = state_lib.state_shardings(tx, abstract_params, param_shardings, mesh)
    state, meta = restore_state(store, latest, model, tx, shardings)
    position = int(meta.get("data_position", latest))
    log(f"[{desc}] resumed from {store.directory / str(latest)} (step {latest}, "
        f"data position {position})")
    return state, shardings, store, position, mesh, latest


def run_training(*, workdir: str | os.PathLike, model, trainer: TrainerConfig,
                 optimizer: optimizer_lib.OptimizerConfig,
                 init_params: Callable[[], Any] | None,
                 make_batches: Callable[[int], Iterator[batch_lib.Batch]],
                 eval_fn: Callable[[state_lib.TrainState], dict] | None = None,
                 log: Callable[[str], None] = print, desc: str = "train"
                 ) -> state_lib.TrainState:
    """Train `model` for `trainer.train_steps` steps in `workdir` (resuming if possible).

    Args:
      init_params: () -> initial params (a loaded model); None = random init. Not called
        when resuming.
      make_batches: start_batch -> iterator of this process's numpy `Batch`es (its rows of
        each global batch), deterministic in start_batch.
      eval_fn: state -> {name: scalar}, run every eval_period steps and at the end.
    Returns the final state.
    """
    workdir = pathlib.Path(workdir)
    tx, schedule = optimizer_lib.make_optimizer(optimizer, trainer.train_steps)
    state, shardings, store, data_position, mesh, latest = open_state(
        workdir, model, trainer, tx, init_params, log, desc)
    start = int(jax.device_get(state.step))
    step_fn = step_lib.make_train_step(model, tx, schedule, mesh, shardings,
                                       trainer.num_microbatches)
    b_shardings = step_lib.batch_shardings(mesh)
    writer = MetricsWriter(workdir, resumed_step=None if latest is None else start)
    batches = make_batches(data_position)

    from tqdm import tqdm

    bar = tqdm(total=trainer.train_steps, initial=start, desc=desc, unit="step",
               disable=not trainer.progress or jax.process_index() != 0)
    window_start, window_steps, window_tokens = time.monotonic(), 0, 0
    try:
        for step in range(start, trainer.train_steps):
            local = next(batches)
            data_position += 1
            window_tokens += int(np.prod(local.encoder_input_tokens.shape)
                                 + np.prod(local.decoder_target_tokens.shape)) * jax.process_count()
            # Leaf by leaf: each field with its own sharding, on one process or several.
            state, metrics = step_fn(state, jax.tree.map(batch_lib.to_global, local,
                                                         b_shardings))
            window_steps += 1
            done = step + 1
            bar.update(1)
            if done % trainer.log_period == 0 or done == trainer.train_steps:
                metrics = jax.device_get(metrics)  # blocks on the step: the clock is honest
                elapsed = max(time.monotonic() - window_start, 1e-9)
                metrics["steps_per_second"] = window_steps / elapsed
                metrics["tokens_per_second"] = window_tokens / elapsed
                writer.write(done, metrics)
                bar.set_postfix(loss=f"{float(metrics['loss']):.4f}")
                window_start, window_steps, window_tokens = time.monotonic(), 0, 0
            if done % trainer.checkpoint_period == 0 or done == trainer.train_steps:
                store.save(done, state_lib.state_to_items(state),
                           metadata={"data_position": data_position})
            if eval_fn is not None and ((trainer.eval_period and done % trainer.eval_period == 0)
                                        or done == trainer.train_steps):
                eval_start = time.monotonic()
                results = eval_fn(state)
                if results:
                    writer.write(done, {f"eval/{k}": v for k, v in results.items()})
                    log(f"[{desc}] step {done}: " + ", ".join(
                        f"{k} {float(v):.4f}" for k, v in results.items()))
                # Evaluation is not training: its time leaves the tokens/s window.
                window_start += time.monotonic() - eval_start
    finally:
        bar.close()
        writer.close()
        store.close()
    return state
