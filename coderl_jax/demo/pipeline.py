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
    test: list = dataclasses.field(default_factory=list)  # test split problems
    models: dict[str, pathlib.Path] = dataclasses.field(default_factory=dict)

    @property
    def train_path(self) -> pathlib.Path:
        return self.work / "data" / "train.jsonl"

    @property
    def test_path(self) -> pathlib.Path:
        return self.work / "data" / "test.jsonl"

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
    run.train = synthetic.generate_problems("train", cfg.num_train_problems, cfg.seed)
    run.test = synthetic.generate_problems("test", cfg.num_test_problems, cfg.seed)
    synthetic.save_problems(run.train, run.train_path)
    synthetic.save_problems(run.test, run.test_path)
    run.log(f"    {len(run.train)} train / {len(run.test)} test problems -> "
            f"{run.train_path.parent}")


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
                                           steps=run.cfg.warm_steps)
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
                           workers=cfg.workers, progress=False)
    run.log("    " + summary_table(records).replace("\n", "\n    "))


def _labelled_data(run: DemoRun) -> dict[str, pathlib.Path]:
    samples, results = run.train_samples
    return dict(samples=samples, results=results, data=run.critic_data,
                init_model=run.models["warm"])


def train_critics(run: DemoRun) -> None:
    for name, binary in (("critic", False), ("critic_binary", True)):
        run.models[name] = training.train_critic(run.cfg, run.work / name, binary=binary,
                                                 log=run.quiet, **_labelled_data(run))
    for key, name in (("critic_accuracy", "critic"), ("binary_critic_accuracy", "critic_binary")):
        detail = training.critic_eval_report(run.work / name)
        run.result[key] = detail.get("accuracy", float("nan"))
        run.result[key + "_detail"] = detail
    run.log(f"    held-out accuracy: 4-class {run.result['critic_accuracy']:.3f}, binary "
            f"{run.result['binary_critic_accuracy']:.3f}")


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
    run.models["ce_plus"] = training.finetune(
        run.cfg, run.work / "ce_plus", run.train_path, run.models["warm"], run.quiet,
        steps=run.cfg.rl_steps, lr=run.cfg.rl_learning_rate)


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
ABLATION_STAGE: Stage = ("ablation: return estimators A, B, C, D, group", ablation)


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
    stages = STAGES + ((ABLATION_STAGE,) if cfg.ablation else ())
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
