"""`run_demo`: the demo's stages in order, each a named function over one `DemoRun`.

A stage reads what earlier stages left on the `DemoRun` (paths of problems, models,
samples), does its work through the library (training stages through `demo.training`,
evaluation through `demo.evaluation`), records its numbers in `run.result` and logs a
summary line. `run_demo` times each stage and writes the report (`demo.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from coderl_jax.demo import evaluation, report, training
from coderl_jax.demo.config import ABLATION_ESTIMATORS, SYSTEM_NAMES, DemoConfig


@dataclasses.dataclass
class DemoRun:
    """One demo run: its config, log, and what its stages have produced so far."""

    cfg: DemoConfig
    log: Callable[[str], None]
    work: pathlib.Path
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    train: list = dataclasses.field(default_factory=list)  # train split problems
    test: list = dataclasses.field(default_factory=list)  # evaluated problems (test or val)
    val: list = dataclasses.field(default_factory=list)  # validation split problems
    models: dict[str, pathlib.Path] = dataclasses.field(default_factory=dict)

    @property
    def train_path(self) -> pathlib.Path:
        return self.work / "data" / "train.jsonl"

    @property
    def test_path(self) -> pathlib.Path:
        """The evaluated split's problems: test, or validation (DemoConfig.eval_split)."""
        return self.val_path if self.cfg.eval_split == "validation" else \
            self.work / "data" / "test.jsonl"

    @property
    def val_path(self) -> pathlib.Path:
        return self.work / "data" / "val.jsonl"

    @property
    def critic_data(self) -> pathlib.Path:
        """The train problems the critics and the repair model learn from."""
        return self.work / "data" / "critic_problems.jsonl"

    @property
    def train_samples(self) -> tuple[pathlib.Path, pathlib.Path]:
        """(samples, results) of the warm start on `critic_data`."""
        return self.work / "train_samples.jsonl", self.work / "train_results.jsonl"

    @staticmethod
    def quiet(message: str) -> None:
        """The training stages' own log lines: each stage logs its summary instead."""


def make_problems(run: DemoRun) -> None:
    from coderl_jax.data import synthetic

    cfg = run.cfg
    if cfg.eval_split not in ("test", "validation"):
        raise ValueError(f"eval_split must be test or validation, got {cfg.eval_split!r}")
    if cfg.eval_split == "validation" and not cfg.num_val_problems:
        raise ValueError("eval_split 'validation' needs num_val_problems > 0")
    drawn = synthetic.generate_problems("train", cfg.num_train_problems + cfg.num_val_problems,
                                        cfg.seed)  # prefix-stable: train is the same
    run.train, run.val = drawn[:cfg.num_train_problems], drawn[cfg.num_train_problems:]
    test = synthetic.generate_problems("test", cfg.num_test_problems, cfg.seed)
    synthetic.save_problems(run.train, run.train_path)
    synthetic.save_problems(test, run.work / "data" / "test.jsonl")
    if run.val:
        synthetic.save_problems(run.val, run.val_path)
    run.test = run.val if cfg.eval_split == "validation" else test
    run.log(f"    {len(run.train)} train / {len(run.val)} validation / {len(test)} test "
            f"problems -> {run.train_path.parent}; evaluating on {cfg.eval_split}")


def make_tokenizer(run: DemoRun) -> None:
    from coderl_jax.data import corpus, tokenizer

    tok_dir = run.work / "tokenizer"
    texts = corpus.read_corpus(max_bytes=run.cfg.tokenizer_corpus_bytes).texts()
    texts += [s for p in run.train for s in p.solutions]
    tokenizer.save_tokenizer(tokenizer.train_tokenizer(texts, run.cfg.vocab_size), tok_dir)
    run.models["tokenizer"] = tok_dir
    run.log(f"    vocab {run.cfg.vocab_size} from {len(texts)} documents -> {tok_dir}")


def pretrain(run: DemoRun) -> None:
    out = run.work / "pretrain"
    run.models["pretrain"] = training.pretrain(run.cfg, out, run.models["tokenizer"], run.quiet)
    run.log(f"    loss {training.metric(out, 'loss'):.3f} -> {run.models['pretrain']}")


def warm_start(run: DemoRun) -> None:
    out = run.work / "warm"
    run.models["warm"] = training.finetune(run.cfg, out, run.train_path,
                                           run.models["pretrain"], run.quiet,
                                           steps=run.cfg.warm_steps, warm=True,
                                           eval_path=run.val_path if run.val else None)
    run.log(f"    loss {training.metric(out, 'loss'):.3f}, held-out "
            f"{training.metric(out, 'eval/heldout_nll'):.3f} -> {run.models['warm']}")


def sample_train_split(run: DemoRun) -> None:
    """The warm start's programs for the critic problems, judged: the critics' data."""
    from coderl_jax.data import synthetic
    from coderl_jax.execution import execute_file, summary_table
    from coderl_jax.generation import generate_problems_file

    cfg = run.cfg
    synthetic.save_problems(run.train[:cfg.critic_problems], run.critic_data)
    samples_path, results_path = run.train_samples
    generate_problems_file(str(run.models["warm"]), "synthetic", str(run.critic_data),
                           samples_path, cfg.sampling(cfg.critic_samples), seed=cfg.seed,
                           batch_size=8, max_source_length=cfg.max_source_length,
                           progress=False)
    records = execute_file("synthetic", run.critic_data, samples_path, results_path,
                           workers=cfg.workers, verdict_policy=cfg.verdict_policy,
                           progress=False)
    run.log("    " + summary_table(records).replace("\n", "\n    "))


def _labelled_data(run: DemoRun) -> dict[str, pathlib.Path]:
    samples, results = run.train_samples
    return dict(samples=samples, results=results, data=run.critic_data,
                init_model=run.models["warm"])


def train_critics(run: DemoRun) -> None:
    for name, binary in (("critic", False), ("critic_binary", True)):
        run.models[name] = training.train_critic(run.cfg, run.work / name, binary=binary,
                                                 log=run.quiet, **_labelled_data(run))
    for key, name in (("critic", "critic"), ("binary_critic", "critic_binary")):
        detail = training.critic_eval_report(run.work / name)
        run.result[f"{key}_accuracy"] = detail.get("accuracy", float("nan"))
        run.result[f"{key}_majority_baseline"] = detail.get("majority_baseline", float("nan"))
        run.result[f"{key}_accuracy_detail"] = detail
    r = run.result
    run.log(f"    held-out accuracy: 4-class {r['critic_accuracy']:.3f} (majority baseline "
            f"{r['critic_majority_baseline']:.3f}), binary {r['binary_critic_accuracy']:.3f} "
            f"(majority baseline {r['binary_critic_majority_baseline']:.3f})")


def train_repair(run: DemoRun) -> None:
    run.models["repair"] = training.train_repair(run.cfg, run.work / "repair", log=run.quiet,
                                                 **_labelled_data(run))


def train_rl(run: DemoRun) -> None:
    out = run.work / "rl"
    run.models["coderl"] = training.train_rl(
        run.cfg, out, estimator="coderl", actor=run.models["warm"],
        critic=run.models["critic"], train_path=run.train_path, log=run.quiet)
    run.log(f"    train sample pass rate: first step "
            f"{training.metric(out, 'sample_pass_rate', 0):.2f}, last step "
            f"{training.metric(out, 'sample_pass_rate'):.2f}")


def train_ce_plus(run: DemoRun) -> None:
    """The control: L_ce from the warm start with RL's optimizer settings and number of
    updates, and at least as many reference rows per update as an RL step has rows."""
    rows = training.rl_config(run.cfg, "coderl").rows
    run.models["ce_plus"] = training.finetune(
        run.cfg, run.work / "ce_plus", run.train_path, run.models["warm"], run.quiet,
        steps=run.cfg.rl_steps, lr=run.cfg.rl_learning_rate,
        batch_size=max(run.cfg.batch_size, rows))


def evaluate_models(run: DemoRun) -> None:
    cfg = run.cfg
    for key, model in (("ce", "warm"), ("ce_plus", "ce_plus"), ("coderl", "coderl")):
        r = evaluation.evaluate_system(key, str(run.models[model]), run.test_path, run.test,
                                       run.work / "eval" / key, cfg)
        run.result[key] = r
        run.log(f"    {SYSTEM_NAMES[key]}: pass@1 {r['pass@1']:.1f}, "
                f"pass@{cfg.eval_samples} {r[f'pass@{cfg.eval_samples}']:.1f}")


def critic_sampling(run: DemoRun) -> None:
    programs, summary, modes = evaluation.critic_sampling_programs(
        run.cfg, run.models["coderl"], run.models["critic_binary"], run.models["repair"],
        run.test, run.test_path)
    run.result["critic_sampling"] = summary
    run.result["coderl_cs"] = evaluation.evaluate_system(
        "coderl_cs", None, run.test_path, run.test, run.work / "eval" / "coderl_cs", run.cfg,
        programs)
    run.result["critic_sampling_by_path"] = evaluation.pass_by_path(
        modes, {key: run.work / "eval" / key / "results_hidden.jsonl"
                for key in ("coderl", "coderl_cs")})
    run.log(f"    pass@1 {run.result['coderl_cs']['pass@1']:.1f}; paths: {summary}")


def ablation(run: DemoRun) -> None:
    """RL with each return estimator from the same warm start, evaluated like CodeRL."""
    cfg = run.cfg
    run.result["ablation"] = {}
    for estimator in ABLATION_ESTIMATORS:
        out = run.work / "ablation" / estimator
        model = training.train_rl(cfg, out, estimator=estimator, actor=run.models["warm"],
                                  critic=run.models["critic"], train_path=run.train_path,
                                  log=run.quiet)
        r = evaluation.evaluate_system(estimator, str(model), run.test_path, run.test,
                                       out / "eval", cfg)
        run.result["ablation"][estimator] = {
            "pass@1": r["pass@1"], f"pass@{cfg.eval_samples}": r[f"pass@{cfg.eval_samples}"],
            "last_sample_pass_rate": training.metric(out, "sample_pass_rate")}
        run.log(f"    {estimator}: pass@1 {r['pass@1']:.1f}")


# The paper's Table 3: (name, estimator, RLConfig overrides); "L_ce + L_rl" is CodeRL's run.
OBJECTIVE_ABLATION = (("L_ce only", "coderl", {"rl_weight": 0.0}),
                      ("L_rl only", "coderl", {"ce_weight": 0.0}),
                      ("L_ce on samples with r = 1", "positive_ce", {"ce_weight": 0.0}))


def objective_ablation(run: DemoRun) -> None:
    """RL objectives from the same warm start (paper Table 3), evaluated like CodeRL."""
    cfg, n = run.cfg, run.cfg.eval_samples
    table = {"L_ce + L_rl": {"pass@1": run.result["coderl"]["pass@1"],
                             f"pass@{n}": run.result["coderl"][f"pass@{n}"]}}
    for i, (name, estimator, overrides) in enumerate(OBJECTIVE_ABLATION):
        out = run.work / "ablation_objective" / str(i)
        model = training.train_rl(cfg, out, estimator=estimator, actor=run.models["warm"],
                                  critic=run.models["critic"], train_path=run.train_path,
                                  log=run.quiet, overrides=overrides)
        r = evaluation.evaluate_system(name, str(model), run.test_path, run.test,
                                       out / "eval", cfg)
        table[name] = {"pass@1": r["pass@1"], f"pass@{n}": r[f"pass@{n}"]}
        run.log(f"    {name}: pass@1 {r['pass@1']:.1f}")
    run.result["ablation_objective"] = table


# The paper's Table 4: (name, refine on, repair on, M); "no CS" is CodeRL's own evaluation.
CS_ABLATION = (("refine only", True, False, 1), ("repair only, M=1", False, True, 1),
               ("repair only, M=2", False, True, 2), ("refine + repair, M=1", True, True, 1),
               ("refine + repair, M=2", True, True, 2))


def critic_sampling_ablation(run: DemoRun) -> None:
    """Critic sampling's parts on the CodeRL actor (paper Table 4), evaluated like CS."""
    cfg, n = run.cfg, run.cfg.eval_samples
    table = {"no CS": {"pass@1": run.result["coderl"]["pass@1"],
                       f"pass@{n}": run.result["coderl"][f"pass@{n}"]}}
    for i, (name, refine, repair, m) in enumerate(CS_ABLATION):
        out = run.work / "ablation_cs" / str(i)
        programs, summary, _ = evaluation.critic_sampling_programs(
            cfg, run.models["coderl"], run.models["critic_binary"],
            run.models["repair"] if repair else None, run.test, run.test_path,
            refine=refine, repair_top_m=m)
        r = evaluation.evaluate_system(name, None, run.test_path, run.test, out, cfg, programs)
        table[name] = {"pass@1": r["pass@1"], f"pass@{n}": r[f"pass@{n}"],
                       "cut_at_0_share": summary["cut_at_0_share"],
                       "mean_cut": summary["mean_cut"]}
        run.log(f"    {name}: pass@1 {r['pass@1']:.1f}, pass@{n} {r[f'pass@{n}']:.1f}")
    run.result["ablation_critic_sampling"] = table


Stage = tuple[str, Callable[[DemoRun], None]]

STAGES: tuple[Stage, ...] = (
    ("problems", make_problems),
    ("tokenizer", make_tokenizer),
    ("pretrain (MSP + NTP on the stdlib)", pretrain),
    ("warm start (L_ce)", warm_start),
    ("sample + execute on the train split", sample_train_split),
    ("critic (4-class) + binary critic", train_critics),
    ("repair model", train_repair),
    ("online CodeRL (estimator D)", train_rl),
    ("CE+ (L_ce for as many updates)", train_ce_plus),
    ("evaluate CE, CE+, CodeRL on the test split", evaluate_models),
    ("CodeRL + critic sampling", critic_sampling),
)
ABLATION_STAGES: tuple[Stage, ...] = (
    ("ablation: return estimators A, B, C, D, group, pass_at_k", ablation),
    ("ablation: RL objectives (paper Table 3)", objective_ablation),
    ("ablation: critic sampling parts (paper Table 4)", critic_sampling_ablation))


@contextlib.contextmanager
def _timed(run: DemoRun, name: str, total: int) -> Iterator[None]:
    """Logs a stage's number and name, then its wall time; records it in `run.stages`."""
    start = time.monotonic()
    run.log(f"[demo {len(run.stages) + 1}/{total}] {name} ...")
    yield
    run.stages[name] = round(time.monotonic() - start, 1)
    run.log(f"[demo {len(run.stages)}/{total}] {name}: {run.stages[name]:.1f} s")


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every stage into `cfg.workdir`; returns the report.json dict."""
    start = time.monotonic()
    run = DemoRun(cfg, log, pathlib.Path(cfg.workdir))
    run.work.mkdir(parents=True, exist_ok=True)
    stages = STAGES + (ABLATION_STAGES if cfg.ablation else ())
    total = len(stages) + 1  # and the report
    for name, stage in stages:
        with _timed(run, name, total):
            stage(run)
    with _timed(run, "report", total):
        _finish(run, start)
        text, plots = report.write_markdown_and_plots(run.result, cfg, run.work)
        log(text)
        log(f"    report -> {run.work / 'report.md'}, plots -> " + ", ".join(map(str, plots)))
    _finish(run, start)  # the report stage's own time included
    report.write_json(run.result, run.work)
    log(f"[demo] total {run.result['seconds']:.0f} s")
    return run.result


def _finish(run: DemoRun, start: float) -> None:
    run.result["seconds"] = round(time.monotonic() - start, 1)
    run.result["stages"] = run.stages
    config = dataclasses.asdict(run.cfg)
    if config["family"] == "t5":  # the default: T5 reports stay as they were
        del config["family"]
    run.result["config"] = config
