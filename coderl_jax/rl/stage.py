"""`train_rl`: the RL stage, online CodeRL or offline from sample files, on the one loop.

    model_dir = train_rl(workdir, actor="warm/model", critic="critic/model",
                         dataset="synthetic", data="train.jsonl", rl=RLConfig(...),
                         trainer=TrainerConfig(...), optimizer=OptimizerConfig(...))

`coderl train-rl` builds the three configs from gin (`coderl_jax.train.configurables`).
Writes, like every stage: checkpoints/ (resume: the train state and the problem order),
metrics.jsonl + tensorboard/ (per step: returns, outcome shares, pass rate, no-signal
share, critic accuracy, KL, tokens/s and the time split sampling / wait / critic /
reference / update), rollouts/ (with RLConfig.save_rollouts) and model/ at the end.
Multi-host: each process samples its share of each problem batch with its own sandbox
pool; the normalisers are global and the update is one global step.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable

import jax

from coderl_jax.rl import offline, rollout
from coderl_jax.rl.config import RLConfig
from coderl_jax.rl.source import OfflineSource, OnlineSource
from coderl_jax.training import loop, model_io
from coderl_jax.training.optimizer import OptimizerConfig
from coderl_jax.training.step import ActorModel


def _check(cfg: RLConfig, trainer: loop.TrainerConfig, critic, samples, results,
           baseline_samples, baseline_results, log) -> None:
    """Settings that cannot work together fail before anything is loaded."""
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
    offline_mode = samples is not None
    if offline_mode and results is None:
        raise ValueError("offline RL needs both samples and results files")
    if (baseline_samples is None) != (baseline_results is None):
        raise ValueError("the greedy baseline needs both baseline_samples and "
                         "baseline_results files")
    if offline_mode and cfg.needs_baseline and baseline_samples is None:
        raise ValueError(f"return estimator {cfg.estimator!r} needs the greedy baseline: "
                         "give baseline_samples and baseline_results (or use an estimator "
                         "without a baseline, e.g. 'critic' or 'group')")
    if cfg.needs_critic and not critic:
        raise ValueError(f"return estimator {cfg.estimator!r} needs a critic (--critic, from "
                         "`coderl train-critic`); RLConfig.estimator='A' needs none")
    if critic and cfg.needs_critic:
        check_critic_policy(critic, cfg, log)


def check_critic_policy(critic: str, cfg: RLConfig, log) -> None:
    """The critic's labels must have been judged with RL's verdict policy (the policy its
    model dir records, `outcomes.VERDICT_POLICY_FILE`); a mismatch fails unless
    RLConfig.allow_verdict_policy_mismatch."""
    import json

    from coderl_jax import outcomes

    path = pathlib.Path(critic, outcomes.VERDICT_POLICY_FILE)
    found = json.loads(path.read_text())["verdict_policy"] if path.exists() else None
    note = outcomes.check_verdict_policy(found, cfg.policy, where=f"critic {critic}",
                                         allow_mismatch=cfg.allow_verdict_policy_mismatch)
    if note:
        log(f"[train-rl] {note}")


def _scorers(cfg: RLConfig, actor: str, critic: str | None, reference: str | None):
    """The frozen critic and reference `Scorer`s (None where unused), checked."""
    from coderl_jax import outcomes
    from coderl_jax.scoring import Scorer

    critic_scorer = Scorer.load(critic) if critic else None
    if critic_scorer is not None and tuple(critic_scorer.classes or ()) != outcomes.OUTCOMES:
        raise ValueError(f"RL needs the 4-class critic {outcomes.OUTCOMES}; the given "
                         f"critic has classes {critic_scorer.classes}")
    ref_scorer = Scorer.load(reference or actor) if cfg.kl_coef else None
    return critic_scorer, ref_scorer


def train_rl(workdir: str, *, actor: str, dataset: str, rl: RLConfig,
             trainer: loop.TrainerConfig, optimizer: OptimizerConfig, data: str | None = None,
             critic: str | None = None, reference: str | None = None,
             samples: str | None = None, results: str | None = None,
             baseline_samples: str | None = None, baseline_results: str | None = None,
             max_problems: int | None = None, loader: model_io.Loader = model_io.load_init,
             log: Callable[[str], None] = print) -> pathlib.Path:
    """RL-train the warm-started `actor`; returns the model dir (workdir/model).

    Args:
      actor: our model dir, a HF dir or a hub id (the warm start).
      critic: the 4-class critic's model dir (`coderl train-critic`), frozen.
      reference: the frozen reference policy for the KL term (default: `actor`, when
        rl.kl_coef > 0).
      dataset, data: the problems (with hidden tests and reference solutions).
      samples, results (+ baseline_samples, baseline_results): offline mode, the official
        release's setting: RL from these files instead of fresh samples.
      rl, trainer, optimizer: the RL settings, how long / how to train.
    """
    from coderl_jax.data import loaders

    cfg = rl
    _check(cfg, trainer, critic, samples, results, baseline_samples, baseline_results, log)
    problems = [p for p in loaders.load_problems(dataset, data)[:max_problems] if p.hidden_tests]
    if not problems:
        raise ValueError(f"train-rl: no problem with hidden tests in {dataset} {data or ''}")
    init = loader(actor, None)
    prepared = rollout.prepare_problems(problems, init.tokenizer, cfg.max_source_length,
                                        cfg.max_new_tokens)
    critic_scorer, ref_scorer = _scorers(cfg, actor, critic, reference)
    if samples is not None:
        groups = offline.offline_groups(
            prepared, samples, results, baseline_samples, baseline_results,
            tokenizer=init.tokenizer, num_samples=cfg.num_samples,
            max_target_length=cfg.max_new_tokens, reward_fn=cfg.reward_fn,
            verdict_policy=cfg.policy,
            allow_verdict_policy_mismatch=cfg.allow_verdict_policy_mismatch)
        log(f"[train-rl] offline: {len(groups)} problems with samples in {samples}")
        source = OfflineSource(cfg, groups, critic_scorer, ref_scorer, trainer.seed)
    else:
        source = OnlineSource(cfg, prepared, functools.partial(
            rollout.Rollout, init.config, init.tokenizer, cfg, critic=critic_scorer,
            reference=ref_scorer, seed=trainer.seed,
            rollout_dir=pathlib.Path(workdir) / rollout.ROLLOUT_DIR if cfg.save_rollouts
            else None), functools.partial(_executor, cfg, data), trainer.seed)
    state = loop.run_training(workdir=workdir, model=ActorModel(init.config), trainer=trainer,
                              optimizer=optimizer, init_params=lambda: init.params,
                              source=source, log=log, desc="train-rl")
    out = model_io.save_final(workdir, init, state,
                              metadata={"stage": "train-rl", "init": init.source,
                                        "estimator": cfg.estimator, "reward": cfg.reward})
    log(f"[train-rl] wrote {out}")
    return out


def _executor(cfg: RLConfig, data: str | None):
    """The one sandbox pool of the run; the problem file's folder is hidden from programs."""
    from coderl_jax.sandbox import Executor

    hide = [str(pathlib.Path(data).resolve().parent)] if data else []
    return Executor(cfg.workers, timeout=cfg.timeout, hide_paths=hide)
