"""The one host loop of every stage: resume, checkpoints, logs, progress, evaluation, stop.

    state = run_training(workdir=..., model=ActorModel(config), trainer=TrainerConfig(...),
                         optimizer=OptimizerConfig(...), init_params=lambda: params,
                         source=sources.supervised_stream(examples, ...))

The loop asks a *batch source* (`sources.BatchSource`) for the next draw given the current
state: a dataset stream for pretrain / finetune / critic / repair, a rollout source for
online RL, a file source for offline RL (`rl/source.py`). RL adds a source, not a loop.

* Resume by default: when `workdir/checkpoints` holds a step, the whole state (params,
  optimizer, step, rng) is restored into its shardings and the source restarts at the
  checkpointed data position (draws consumed), so the steps after a resume are the steps
  an uninterrupted run would have taken.
* `trainer.train_steps` counts optimizer updates; a draw may hold several (RL's
  "alternate" objective: a CE update then an RL update). Logging and checkpoints happen
  after the draw whose updates reach a multiple of their period, and after the last.
* Checkpoints every `checkpoint_period` updates and at the end, the last
  `keep_checkpoints` kept (orbax, written collectively by all processes).
* Logs (`metrics_log.py`): one JSON line in `workdir/metrics.jsonl` and TensorBoard scalars
  (process 0 only), with at least step, loss, learning_rate and tokens/s, plus what the
  source measured (`Draw.metrics`); a tqdm bar with steps/s and ETA.
* `eval_fn(state) -> dict` every `eval_period` updates and at the end, logged the same way
  under "eval/...".
* Interruption: SIGTERM raises `Stop` (SIGINT: KeyboardInterrupt) in the loop; the writer,
  the checkpoint store and the source (its sandbox pool, for RL) are closed with both
  signals ignored until they are, so the last checkpoint stays intact and no sandbox
  process survives. The mains answer exit code 130 and "run the same command to resume".
* Multi-host: `maybe_initialize_distributed()` starts `jax.distributed` when the
  environment describes several processes; each process feeds its own rows
  (`sources.process_rows`) and `batch.to_global` assembles the global batch.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from coderl_jax import checkpoints, partitioning
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import optimizer as optimizer_lib
from coderl_jax.training import sources as sources_lib
from coderl_jax.training import state as state_lib
from coderl_jax.training import step as step_lib
# Re-exported: the data order and the metrics files are part of the loop's interface.
from coderl_jax.training.metrics_log import (METRICS_FILE, TENSORBOARD_DIR,  # noqa: F401
                                             MetricsWriter, read_metrics)
from coderl_jax.training.sources import (epoch_order, example_stream,  # noqa: F401
                                         process_rows)
from coderl_jax.training.stopping import EarlyStopping, Patience

CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """How long and how to train (the mains bind it from the run gin files' macros, e.g.
    %TRAIN_STEPS; `coderl_jax.train.configurables`).

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




# ----------------------------------------------------------------------------- interruption
class Stop(Exception):
    """SIGTERM asked the run to stop (handled like Ctrl-C: resources closed, no save)."""


def _raise_stop(signum, frame):
    raise Stop(f"signal {signum}")


def _set_handler(signum, handler):
    """signal.signal where it can be set (the main thread); -> the previous handler. None
    (a handler not set from Python, or off the main thread) restores the default."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _close_shielded(closers: list[Callable[[], None]]) -> None:
    """Run the closers with SIGINT and SIGTERM ignored: a second Ctrl-C / SIGTERM must not
    cut the clean-up short (the sandbox pool would be left to its own shutdown)."""
    shielded = {sig: _set_handler(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                   signal.SIGTERM)}
    try:
        for close in closers:
            close()
    finally:
        for sig, handler in shielded.items():
            _set_handler(sig, handler)


# ------------------------------------------------------------------------------ the loop
def _crossed(done: int, updates: int, period: int) -> bool:
    """True when the updates (done - updates, done] include a multiple of `period`."""
    return period > 0 and done // period > (done - updates) // period


class _Window:
    """Steps and tokens since the last log line, for steps/s and tokens/s."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.start, self.steps, self.tokens = time.monotonic(), 0, 0

    def add(self, batch: batch_lib.Batch) -> None:
        self.steps += 1
        self.tokens += int(np.prod(batch.encoder_input_tokens.shape)
                           + np.prod(batch.decoder_target_tokens.shape)) * jax.process_count()

    def rates(self) -> dict:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return {"steps_per_second": self.steps / elapsed,
                "tokens_per_second": self.tokens / elapsed}


def _apply(step_fn, b_shardings, state, draw: sources_lib.Draw, window: _Window, timed: bool):
    """The draw's updates: -> (state, [(prefix, device metrics)], timings)."""
    results, t0 = [], time.monotonic()
    for batch, prefix in zip(draw.batches, draw.prefixes, strict=True):
        window.add(batch)
        # Leaf by leaf: each field with its own sharding, on one process or several.
        state, metrics = step_fn(state, jax.tree.map(batch_lib.to_global, batch, b_shardings))
        results.append((prefix, metrics))
    timings = {}
    if timed:
        results = jax.device_get(results)  # blocks: the update time is real
        timings["time/update"] = time.monotonic() - t0
    return state, results, timings


def _log_record(results, draw: sources_lib.Draw, timings: dict, window: _Window) -> dict:
    """The step's metrics (prefixed per update) + the source's + timings + rates."""
    record = {}
    for prefix, metrics in jax.device_get(results):  # blocks on the step: the clock is honest
        record.update({prefix + k: v for k, v in metrics.items()})
    record.update(draw.metrics)
    record.update(timings)
    record.update(window.rates())
    return {k: v for k, v in record.items() if v is not None}


def run_training(*, workdir: str | os.PathLike, model, trainer: TrainerConfig,
                 optimizer: optimizer_lib.OptimizerConfig,
                 init_params: Callable[[], Any] | None,
                 source: sources_lib.BatchSource | None = None,
                 make_batches: Callable[[int], Iterator[batch_lib.Batch]] | None = None,
                 eval_fn: Callable[[state_lib.TrainState], dict] | None = None,
                 log: Callable[[str], None] = print, desc: str = "train",
                 stopping: EarlyStopping | None = None) -> state_lib.TrainState:
    """Train `model` for `trainer.train_steps` updates in `workdir` (resuming if possible).

    Args:
      init_params: () -> initial params (a loaded model); None = random init. Not called
        when resuming.
      source: the `BatchSource` (closed by this function whatever happens);
        make_batches: start -> iterator of numpy Batches instead (a `StreamSource`).
      eval_fn: state -> {name: scalar}, run every eval_period updates and at the end.
      stopping: the early-stopping rule on an eval_fn metric (`training/stopping.py`):
        training ends when it fires; with restore_best the returned state holds the best
        evaluation's params (the tracker restarts on a resume).
    Returns the final state. Raises `Stop` on SIGTERM, KeyboardInterrupt on SIGINT.
    """
    if (source is None) == (make_batches is None):
        raise ValueError("run_training takes a source or make_batches, not both or neither")
    source = source or sources_lib.StreamSource(make_batches)
    workdir = pathlib.Path(workdir)
    previous = _set_handler(signal.SIGTERM, _raise_stop)
    closers = [source.close, lambda: _set_handler(signal.SIGTERM, previous)]
    try:
        tx, schedule = optimizer_lib.make_optimizer(optimizer, trainer.train_steps)
        state, shardings, store, position, mesh, latest = open_state(
            workdir, model, trainer, tx, init_params, log, desc)
        closers.insert(0, store.close)
        step_fn = step_lib.make_train_step(model, tx, schedule, mesh, shardings,
                                           trainer.num_microbatches)
        writer = MetricsWriter(workdir, resumed_step=None if latest is None
                               else int(jax.device_get(state.step)))
        closers.insert(0, writer.close)
        source.start(position)
        tracker = Patience(stopping) if stopping is not None and stopping.enabled else None
        if tracker is not None and eval_fn is None:
            raise ValueError("early stopping needs an eval_fn (and TrainerConfig.eval_period)")
        return _train(state, source, step_fn, step_lib.batch_shardings(mesh), store, writer,
                      position, trainer, _Evaluator(eval_fn, tracker, writer, log, desc))
    finally:
        _close_shielded(closers)


class _Evaluator:
    """Runs eval_fn, logs it and applies the stopping rule (keeping the best params)."""

    def __init__(self, eval_fn, tracker, writer, log, desc: str):
        self.eval_fn, self.tracker, self.writer, self.log = eval_fn, tracker, writer, log
        self.desc, self.best_params = desc, None

    def __call__(self, state, done: int) -> bool:
        """Evaluates at update `done`; True when the stopping rule fires."""
        evals = self.eval_fn(state)
        if evals:
            self.writer.write(done, {f"eval/{k}": v for k, v in evals.items()})
            self.log(f"[{self.desc}] step {done}: " + ", ".join(
                f"{k} {float(v):.4f}" for k, v in evals.items()))
        if self.tracker is None:
            return False
        stop = self.tracker.update(done, evals)
        if self.tracker.improved and self.tracker.cfg.restore_best:
            self.best_params = jax.device_get(state.params)
        if stop:
            self.log(f"[{self.desc}] early stop at step {done}: "
                     f"{self.tracker.cfg.metric} has not improved for "
                     f"{self.tracker.cfg.patience} evaluations (best "
                     f"{self.tracker.best_value:.4f} at step {self.tracker.best_step})")
        return stop

    def final(self, state):
        """The state to return: the best evaluation's params with restore_best."""
        if self.best_params is None:
            return state
        self.log(f"[{self.desc}] keeping the params of step {self.tracker.best_step} "
                 f"({self.tracker.cfg.metric} {self.tracker.best_value:.4f})")
        params = jax.tree.map(lambda new, old: jax.device_put(new, old.sharding),
                              self.best_params, state.params)
        return state.replace(params=params)


def _train(state, source, step_fn, b_shardings, store, writer, position: int,
           trainer: TrainerConfig, evaluator: _Evaluator):
    from tqdm import tqdm

    desc = evaluator.desc
    done = int(jax.device_get(state.step))
    per_draw = source.updates_per_draw
    bar = tqdm(total=trainer.train_steps, initial=done, desc=desc, unit="step",
               disable=not trainer.progress or jax.process_index() != 0)
    window = _Window()
    try:
        while done + per_draw <= trainer.train_steps:
            t_draw = time.monotonic()
            draw = source.next(state)
            position += 1
            state, results, timings = _apply(step_fn, b_shardings, state, draw, window,
                                             source.timed)
            if source.timed:
                timings["time/step"] = time.monotonic() - t_draw
            done += len(draw.batches)
            last = done + per_draw > trainer.train_steps
            bar.update(len(draw.batches))
            if _crossed(done, per_draw, trainer.log_period) or last:
                record = _log_record(results, draw, timings, window)
                writer.write(done, record)
                bar.set_postfix(loss=f"{float(record.get('loss', np.nan)):.4f}")
                window.reset()
            saved = _crossed(done, per_draw, trainer.checkpoint_period) or last
            if saved:
                store.save(done, state_lib.state_to_items(state),
                           metadata={"data_position": position})
            if evaluator.eval_fn is not None and (
                    _crossed(done, per_draw, trainer.eval_period) or last):
                eval_start = time.monotonic()
                stop = evaluator(state, done)
                # Evaluation is not training: its time leaves the tokens/s window.
                window.start += time.monotonic() - eval_start
                if stop:
                    if not saved:
                        store.save(done, state_lib.state_to_items(state),
                                   metadata={"data_position": position})
                    break
    finally:
        bar.close()
    return evaluator.final(state)
