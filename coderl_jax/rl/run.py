"""`train_rl`: the RL stage (online CodeRL, or offline from sample files) around `Learner`.

    model_dir = train_rl(workdir, actor="warm/model", critic="critic/model",
                         dataset="synthetic", data="train.jsonl")

Gin binds it (`gin_configs/runs/rl.gin`), `coderl train-rl` wires it. Writes, like every
stage: checkpoints/ (resume), metrics.jsonl + tensorboard/ (per step: returns, outcome
shares, pass rate, no-signal share, critic accuracy, KL, tokens/s and the time split
sampling / wait / critic / reference / update), rollouts/ (with RLConfig.save_rollouts) and
model/ at the end.
"""

from __future__ import annotations

import pathlib
import signal
import threading
import time
from collections.abc import Callable

import gin
import jax
import numpy as np

from coderl_jax.rl import learner as learner_lib
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import common, loop
from coderl_jax.training import optimizer as optimizer_lib
from coderl_jax.training import state as state_lib
from coderl_jax.training import step as step_lib


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


def problem_batch(num_problems: int, per_step: int, seed: int, position: int) -> list[int]:
    """Problem indices of batch `position` of the seeded epoch-by-epoch order."""
    out = []
    for k in range(position * per_step, (position + 1) * per_step):
        epoch, offset = divmod(k, num_problems)
        out.append(int(loop.epoch_order(num_problems, seed, epoch)[offset]))
    return out


@gin.configurable(module="coderl_jax.rl")
def train_rl(workdir: str, *, actor: str = gin.REQUIRED, dataset: str = gin.REQUIRED,
             data: str | None = None, critic: str | None = None, reference: str | None = None,
             samples: str | None = None, results: str | None = None,
             baseline_samples: str | None = None, baseline_results: str | None = None,
             max_problems: int | None = None, log: Callable[[str], None] = print
             ) -> pathlib.Path:
    """RL-train the warm-started `actor`; returns the model dir (workdir/model).

    Args:
      actor: our model dir, a HF dir or a hub id (the warm start).
      critic: the 4-class critic's model dir (`coderl train-critic`), frozen.
      reference: the frozen reference policy for the KL term (default: `actor`, when
        RLConfig.kl_coef > 0).
      dataset, data: the problems (with hidden tests and reference solutions).
      samples, results (+ baseline_samples, baseline_results): offline mode, the official
        release's setting: RL from these files instead of fresh samples.
    """
    from coderl_jax.data import loaders
    from coderl_jax.scoring import Scorer

    workdir = pathlib.Path(workdir)
    cfg = learner_lib.RLConfig()
    trainer = loop.TrainerConfig()
    if trainer.batch_size != cfg.rows:
        log(f"[train-rl] batch size is P * (K + 1) = {cfg.rows} rows "
            f"(TrainerConfig.batch_size {trainer.batch_size} is not used)")
    if cfg.problems_per_step % jax.process_count():
        raise ValueError(f"RLConfig.problems_per_step {cfg.problems_per_step} does not split "
                         f"over {jax.process_count()} processes (each samples its share)")
    if cfg.rows % (trainer.num_microbatches * jax.process_count()):
        raise ValueError(f"{cfg.rows} rows per step do not split into "
                         f"{trainer.num_microbatches} microbatches on {jax.process_count()} "
                         "processes")
    offline = samples is not None
    if offline and results is None:
        raise ValueError("offline RL needs both samples and results files")
    if (baseline_samples is None) != (baseline_results is None):
        raise ValueError("the greedy baseline needs both baseline_samples and "
                         "baseline_results files")
    if offline and cfg.needs_baseline and baseline_samples is None:
        raise ValueError(f"return estimator {cfg.estimator!r} needs the greedy baseline: "
                         "give baseline_samples and baseline_results (or use an estimator "
                         "without a baseline, e.g. 'critic' or 'group')")
    if cfg.needs_critic and not critic:
        raise ValueError(f"return estimator {cfg.estimator!r} needs a critic (--critic, from "
                         "`coderl train-critic`); RLConfig.estimator='A' needs none")
    problems = [p for p in loaders.load_problems(dataset, data)[:max_problems] if p.hidden_tests]
    if not problems:
        raise ValueError(f"train-rl: no problem with hidden tests in {dataset} {data or ''}")
    init = common.load_init(actor, None)
    prepared = learner_lib.prepare_problems(problems, init.tokenizer, cfg.max_source_length,
                                            cfg.max_new_tokens)
    critic_scorer = Scorer.load(critic) if critic else None
    ref_scorer = Scorer.load(reference or actor) if cfg.kl_coef else None

    model = step_lib.ActorModel(init.config)
    tx, schedule = optimizer_lib.make_optimizer(optimizer_lib.OptimizerConfig(),
                                                trainer.train_steps)
    state, shardings, store, position, mesh, resumed = loop.open_state(
        workdir, model, trainer, tx, lambda: init.params, log, "train-rl")
    step_fn = step_lib.make_train_step(model, tx, schedule, mesh, shardings,
                                       trainer.num_microbatches)
    executor = None
    previous = _set_handler(signal.SIGTERM, _raise_stop)
    writer = loop.MetricsWriter(workdir, resumed_step=resumed)
    try:
        if not offline:
            from coderl_jax.sandbox import Executor

            hide = [str(pathlib.Path(data).resolve().parent)] if data else []
            executor = Executor(cfg.workers, timeout=cfg.timeout, hide_paths=hide)
        rl = learner_lib.Learner(
            init.config, init.tokenizer, cfg, critic=critic_scorer, reference=ref_scorer,
            executor=executor, step_fn=step_fn, batch_shardings=step_lib.batch_shardings(mesh),
            seed=trainer.seed,
            rollout_dir=workdir / learner_lib.ROLLOUT_DIR if cfg.save_rollouts else None)
        offline_data = None
        if offline:
            offline_data = learner_lib.offline_groups(
                prepared, samples, results, baseline_samples, baseline_results,
                tokenizer=init.tokenizer, num_samples=cfg.num_samples,
                max_target_length=cfg.max_new_tokens)
            log(f"[train-rl] offline: {len(offline_data)} problems with samples in {samples}")
        _loop(rl, state, store, writer, prepared, offline_data, trainer, cfg, position, log)
        state = rl.final_state
    finally:
        # A second Ctrl-C / SIGTERM must not cut the clean-up short (the sandbox pool would
        # be left to its own shutdown): both wait until it is done.
        shielded = {sig: _set_handler(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            writer.close()
            if executor is not None:
                executor.close()
            store.close()
        finally:
            for sig, handler in shielded.items():
                _set_handler(sig, handler)
            _set_handler(signal.SIGTERM, previous)
    out = common.save_final(workdir, init, state,
                            metadata={"stage": "train-rl", "init": init.source,
                                      "estimator": cfg.estimator})
    log(f"[train-rl] wrote {out}")
    return out


def _loop(rl: learner_lib.Learner, state, store, writer, prepared, offline_data,
          trainer: loop.TrainerConfig, cfg: learner_lib.RLConfig, position: int,
          log: Callable[[str], None]) -> None:
    from tqdm import tqdm

    start = int(jax.device_get(state.step))
    updates_per_step = 1 if cfg.objective == "sum" else 2
    steps = trainer.train_steps
    first = start // updates_per_step
    bar = tqdm(total=steps // updates_per_step, initial=first, desc="train-rl", unit="step",
               disable=not trainer.progress or jax.process_index() != 0)
    pool = offline_data if offline_data is not None else prepared
    try:
        for it in range(first, steps // updates_per_step):
            t_step = time.monotonic()
            indices = problem_batch(len(pool), cfg.problems_per_step, trainer.seed, position)
            mine = loop.process_rows(indices)
            timings: dict[str, float] = {}
            if offline_data is None:
                groups, probs, pooled, ref_logp = rl.collect(
                    state.params, [prepared[i] for i in mine], it, timings)
            else:
                groups = [offline_data[i] for i in mine]
                flat_prompts = [g.prompt_ids for g in groups for _ in g.samples]
                flat = [ids for g in groups for ids in g.samples]
                probs = pooled = ref_logp = None
                if rl.critic is not None:
                    probs, pooled = rl.critic.critic_outputs(flat_prompts, flat)
                if rl.reference is not None:
                    ref_logp = rl.reference.log_probs(flat_prompts, flat,
                                                      temperature=cfg.temperature)
            state, train_metrics = rl.update(state, groups, probs, ref_logp, timings)
            position += 1
            step_time = time.monotonic() - t_step
            done = int(jax.device_get(state.step))
            bar.update(1)
            if (it + 1) % max(trainer.log_period // updates_per_step, 1) == 0 \
                    or done >= steps:
                metrics = dict(train_metrics)
                # Counts summed over processes: process 0 logs the whole batch's figures.
                local = np.concatenate([
                    learner_lib.step_counts(groups, pooled, cfg.return_table),
                    [metrics.pop("dropped_internal"),
                     metrics.pop("dropped_no_baseline"),
                     sum(len(ids) for g in groups for ids in g.samples)]])
                total = batch_lib.global_sum(local)
                metrics.update(learner_lib.statistics_from_counts(total[:-3]))
                metrics["dropped_internal"], metrics["dropped_no_baseline"], sampled = \
                    total[-3:].tolist()
                metrics.update({f"time/{k}": v for k, v in timings.items()})
                metrics["time/step"] = step_time
                metrics["tokens_per_second"] = cfg.rows * (cfg.max_source_length
                                                           + cfg.max_new_tokens) / step_time
                metrics["sampled_tokens"] = sampled
                writer.write(done, {k: v for k, v in metrics.items() if v is not None})
                bar.set_postfix(pass_rate=f"{metrics['sample_pass_rate']:.2f}",
                                ret=f"{metrics['sample_return']:.2f}")
            if done % trainer.checkpoint_period < updates_per_step or done >= steps:
                store.save(done, state_lib.state_to_items(state),
                           metadata={"data_position": position})
    finally:
        bar.close()
        rl.final_state = state
