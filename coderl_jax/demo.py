"""`coderl demo`: the whole CodeRL pipeline on the embedded synthetic benchmark, on a CPU.

Every stage calls the same library function as its own CLI command (with the gin run file
of that command and `experiments/demo_cpu.gin`) and leaves its files in the work dir:

    data/train.jsonl, data/test.jsonl   synthetic problems (disjoint compositions)
    tokenizer/                          byte-level BPE, CodeT5 layout (stdlib + train refs)
    pretrain/model                      `coderl pretrain`: MSP + NTP on the standard library
    warm/model                          `coderl finetune`: L_ce warm start (the CE actor)
    train_samples.jsonl, train_results.jsonl
                                        `coderl generate` + `coderl execute` on the train split
    critic/model, critic_binary/model   `coderl train-critic` (4-class, and --binary)
    repair/model                        `coderl train-repair`
    rl/model                            `coderl train-rl` (online CodeRL, estimator D)
    ce_plus/model                       `coderl finetune` continued from warm/model for as
                                        many updates as RL made (the paper's CE+ control)
    eval/<system>/                      samples, hidden/example results of each system on
                                        the test split (`coderl generate`/`execute`), critic
                                        sampling's through `critic_sampling.critic_sample`
    report.md, report.json, plots/      `coderl evaluate`-style reports, side by side
    ablation/<estimator>/               with --ablation: RL with A, B, C, D and group

Sizes follow docs/design.md's measured facts ("Sizing the CPU demo"): the d128 2+2-layer model,
the warm start fixed in steps (not seconds), so pass rates land in the band where RL and
critic sampling have room. Nothing here is tuned on the test split: the test problems are
only generated and judged at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
from typing import Any, Callable, Iterator

SYSTEMS = ("ce", "ce_plus", "coderl", "coderl_cs")
SYSTEM_NAMES = {"ce": "CE (warm start)", "ce_plus": "CE+ (more L_ce)", "coderl": "CodeRL",
                "coderl_cs": "CodeRL + critic sampling"}
ABLATION_ESTIMATORS = ("baseline", "critic", "decay", "coderl", "group")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run. The defaults take about 15 minutes on 2 CPU cores; `quick()`
    gives the ~3-minute smoke version CI runs."""

    workdir: str = "demo_workdir"
    seed: int = 0
    ablation: bool = False
    workers: int | None = None
    num_train_problems: int = 1200
    num_test_problems: int = 120
    vocab_size: int = 2048
    tokenizer_corpus_bytes: int = 2_000_000
    pretrain_corpus_bytes: int = 1_000_000
    pretrain_steps: int = 60
    warm_steps: int = 220
    batch_size: int = 32
    learning_rate: float = 2e-3
    critic_problems: int = 400
    critic_samples: int = 4
    critic_steps: int = 120
    repair_steps: int = 80
    rl_steps: int = 40
    rl_problems_per_step: int = 8
    rl_samples: int = 4
    rl_learning_rate: float = 2e-4
    eval_samples: int = 10
    temperature: float = 0.6
    top_p: float = 0.95
    max_source_length: int = 256
    max_new_tokens: int = 64
    repair_top_m: int = 2

    @classmethod
    def quick(cls, **overrides) -> "DemoConfig":
        sizes = dict(num_train_problems=120, num_test_problems=24, vocab_size=1024,
                     tokenizer_corpus_bytes=300_000, pretrain_corpus_bytes=100_000,
                     pretrain_steps=4, warm_steps=40, batch_size=16, critic_problems=40,
                     critic_samples=2, critic_steps=8, repair_steps=6, rl_steps=4,
                     rl_problems_per_step=4, rl_samples=2, eval_samples=4)
        return cls(**{**sizes, **overrides})


@contextlib.contextmanager
def _stage(log: Callable[[str], None], stages: dict, name: str, total: int) -> Iterator[None]:
    """Logs a stage's number and name, then its wall time; records it in `stages`."""
    start = time.monotonic()
    log(f"[demo {len(stages) + 1}/{total}] {name} ...")
    yield
    stages[name] = round(time.monotonic() - start, 1)
    log(f"[demo {len(stages)}/{total}] {name}: {stages[name]:.1f} s")


def _gin(run: str, bindings: list[str]) -> None:
    """The gin config a CLI command would parse: its run file, the demo experiment, overrides."""
    from coderl_jax import gin_utils

    gin_utils.parse(["experiments/demo_cpu.gin"], bindings, defaults=[f"runs/{run}.gin"])


def _common_bindings(cfg: DemoConfig, steps: int, lr: float | None = None) -> list[str]:
    return [f"TRAIN_STEPS = {steps}", f"BATCH_SIZE = {cfg.batch_size}",
            f"LEARNING_RATE = {lr or cfg.learning_rate}", f"SEED = {cfg.seed}",
            f"MAX_SOURCE_LENGTH = {cfg.max_source_length}",
            f"MAX_TARGET_LENGTH = {cfg.max_new_tokens}", f"T5Config.vocab_size = {cfg.vocab_size}",
            f"CHECKPOINT_PERIOD = {max(steps, 1)}", "PROGRESS = False"]


def evaluate_system(name: str, model_dir: str | None, test_path: pathlib.Path, test, out_dir,
                    cfg: DemoConfig, programs: list[list[str]] | None = None) -> dict:
    """Sample (unless `programs` are given), judge on hidden and example tests, evaluate."""
    from coderl_jax import metrics
    from coderl_jax.data import jsonl
    from coderl_jax.execution import execute_file
    from coderl_jax.generation import (generate_for_problems, load_model, resolve_sampling,
                                       sample_record)

    out_dir.mkdir(parents=True, exist_ok=True)
    if programs is None:
        config, params, tok = load_model(model_dir)
        sampling = resolve_sampling("synthetic", num_samples=cfg.eval_samples,
                                    max_new_tokens=cfg.max_new_tokens,
                                    temperature=cfg.temperature, top_p=cfg.top_p)
        programs = generate_for_problems(config, params, tok, test, sampling, seed=cfg.seed,
                                         batch_size=8, max_source_length=cfg.max_source_length)
    samples_path = out_dir / "samples.jsonl"
    jsonl.write_jsonl(samples_path, (sample_record(p, code)
                                     for p, codes in zip(test, programs) for code in codes))
    rows = {}
    for tests in ("hidden", "example"):
        rows[tests] = execute_file("synthetic", test_path, samples_path,
                                   out_dir / f"results_{tests}.jsonl", tests=tests,
                                   workers=cfg.workers, progress=False)
    n = cfg.eval_samples
    ks = sorted({1, min(5, n), n})
    report = metrics.evaluate(rows["hidden"], ks, [(1, n), (min(5, n), n)], rows["example"],
                              {p.task_id: p.difficulty for p in test})
    groups = metrics.group_by_task(rows["hidden"])
    report["curve"] = {k: 100.0 * metrics.mean(metrics.pass_at_k_by_task(groups, k).values())
                       for k in range(1, n + 1)}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _pct(x: float) -> str:
    return f"{x:.1f}"


def render_report(result: dict, cfg: DemoConfig) -> str:
    """report.md: the four systems side by side, by difficulty, critics, outcomes."""
    from coderl_jax import metrics

    n = cfg.eval_samples
    k5 = min(5, n)
    lines = ["# coderl demo", "",
             f"Synthetic benchmark: {cfg.num_train_problems} train / {cfg.num_test_problems} "
             f"test problems (disjoint compositions), {n} samples per test problem "
             f"(temperature {cfg.temperature}, top-p {cfg.top_p}), seed {cfg.seed}. "
             f"Total {result['seconds']:.0f} s.", "",
             "## pass@k and n@k on the test split (%)", "",
             f"| system | pass@1 | pass@{k5} | pass@{n} | 1@{n} | {k5}@{n} |",
             "|---|---:|---:|---:|---:|---:|"]
    for key in SYSTEMS:
        r = result[key]
        lines.append(f"| {SYSTEM_NAMES[key]} | {_pct(r['pass@1'])} | {_pct(r[f'pass@{k5}'])} | "
                     f"{_pct(r[f'pass@{n}'])} | {_pct(r['n@k'][f'1@{n}'])} | "
                     f"{_pct(r['n@k'][f'{k5}@{n}'])} |")
    lines += ["", "## pass@1 by difficulty (%)", ""]
    levels = sorted(result["ce"]["by_difficulty"], key=metrics.difficulty_sort_key)
    lines.append("| system | " + " | ".join(f"{lv} ({result['ce']['by_difficulty'][lv]['num_problems']})"
                                            for lv in levels) + " |")
    lines.append("|---|" + "---:|" * len(levels))
    for key in SYSTEMS:
        by = result[key]["by_difficulty"]
        lines.append(f"| {SYSTEM_NAMES[key]} | " + " | ".join(
            _pct(by[lv]["pass@1"]) if lv in by else "-" for lv in levels) + " |")
    lines += ["", "## Critics (held-out problems of the train split)", "",
              f"- 4-class critic accuracy: {result['critic_accuracy']:.3f} "
              "(paper: > 0.75 on APPS)",
              f"- binary critic accuracy: {result['binary_critic_accuracy']:.3f}", "",
              "## Outcomes of the test samples (paper Fig. 8)", "",
              "| system | CompileError | RuntimeError | FailedTest | PassedTest | InternalError |",
              "|---|---:|---:|---:|---:|---:|"]
    for key in SYSTEMS:
        o = result[key]["outcomes"]
        lines.append(f"| {SYSTEM_NAMES[key]} | " + " | ".join(
            str(o.get(name, 0)) for name in ("CompileError", "RuntimeError", "FailedTest",
                                             "PassedTest", "InternalError")) + " |")
    lines += ["", "## Error subtypes (paper Fig. 10)", ""]
    for key in SYSTEMS:
        subtypes = result[key]["error_types"]
        flat = ", ".join(f"{o}/{t} {c}" for o, ts in subtypes.items() for t, c in ts.items())
        lines.append(f"- {SYSTEM_NAMES[key]}: {flat or 'none'}")
    if "critic_sampling" in result:
        cs = result["critic_sampling"]
        lines += ["", "## Critic sampling paths (test problems)", "",
                  ", ".join(f"{k} {v}" for k, v in cs.items()), "",
                  "| path | problems | CodeRL sample pass rate | + critic sampling |",
                  "|---|---:|---:|---:|"]
        for mode, entry in result.get("critic_sampling_by_path", {}).items():
            lines.append(f"| {mode} | {entry['problems']} | {_pct(entry['coderl'])} | "
                         f"{_pct(entry['coderl_cs'])} |")
    if "ablation" in result:
        lines += ["", "## Return estimators (same budget and seed)", "",
                  f"| estimator | pass@1 | pass@{n} | train sample pass rate (last step) |",
                  "|---|---:|---:|---:|"]
        for name, row in result["ablation"].items():
            lines.append(f"| {name} | {_pct(row['pass@1'])} | {_pct(row[f'pass@{n}'])} | "
                         f"{row['last_sample_pass_rate']:.2f} |")
    lines += ["", "## Stages (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in result["stages"].items()]
    return "\n".join(lines) + "\n"


def _metric(workdir: pathlib.Path, key: str, index: int = -1) -> float:
    """metrics.jsonl's `key` at its `index`-th logged record (default: the last); NaN if none."""
    from coderl_jax.training.loop import read_metrics

    values = [r[key] for r in read_metrics(workdir) if key in r]
    return float(values[index]) if values else float("nan")


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every stage into `cfg.workdir`; returns the report.json dict."""
    from coderl_jax import plots
    from coderl_jax.data import corpus, synthetic, tokenizer
    from coderl_jax.execution import execute_file, summary_table
    from coderl_jax.generation import generate_problems_file, resolve_sampling
    from coderl_jax.rl.run import train_rl
    from coderl_jax.training.critic import EVAL_FILE, train_critic
    from coderl_jax.training.finetune import finetune
    from coderl_jax.training.pretrain import pretrain
    from coderl_jax.training.repair import train_repair

    start = time.monotonic()
    work = pathlib.Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    train_path, test_path = work / "data" / "train.jsonl", work / "data" / "test.jsonl"
    stages: dict[str, float] = {}
    total = 12 + (1 if cfg.ablation else 0)
    result: dict[str, Any] = {}
    quiet = lambda message: None  # noqa: E731 (stage functions' own lines are summarised)

    with _stage(log, stages, "problems", total):
        train = synthetic.generate_problems("train", cfg.num_train_problems, cfg.seed)
        test = synthetic.generate_problems("test", cfg.num_test_problems, cfg.seed)
        synthetic.save_problems(train, train_path)
        synthetic.save_problems(test, test_path)
        log(f"    {len(train)} train / {len(test)} test problems -> {train_path.parent}")

    with _stage(log, stages, "tokenizer", total):
        tok_dir = work / "tokenizer"
        texts = corpus.read_corpus(max_bytes=cfg.tokenizer_corpus_bytes).texts()
        texts += [s for p in train for s in p.solutions]
        tokenizer.save_tokenizer(tokenizer.train_tokenizer(texts, cfg.vocab_size), tok_dir)
        log(f"    vocab {cfg.vocab_size} from {len(texts)} documents -> {tok_dir}")

    with _stage(log, stages, "pretrain (MSP + NTP on the stdlib)", total):
        _gin("pretrain", _common_bindings(cfg, cfg.pretrain_steps)
             + ["ENCODER_LENGTH = 128", "DECODER_LENGTH = 64"])
        pretrained = pretrain(str(work / "pretrain"), tokenizer=str(tok_dir),
                              corpus_max_bytes=cfg.pretrain_corpus_bytes, log=quiet)
        log(f"    loss {_metric(work / 'pretrain', 'loss'):.3f} -> {pretrained}")

    with _stage(log, stages, "warm start (L_ce)", total):
        _gin("finetune", _common_bindings(cfg, cfg.warm_steps))
        warm = finetune(str(work / "warm"), dataset="synthetic", data=str(train_path),
                        init_model=str(pretrained), holdout_fraction=0.05, eval_problems=0,
                        log=quiet)
        log(f"    loss {_metric(work / 'warm', 'loss'):.3f}, held-out "
            f"{_metric(work / 'warm', 'eval/heldout_nll'):.3f} -> {warm}")

    with _stage(log, stages, "sample + execute on the train split", total):
        critic_data = work / "data" / "critic_problems.jsonl"
        synthetic.save_problems(train[:cfg.critic_problems], critic_data)
        sampling = resolve_sampling("synthetic", num_samples=cfg.critic_samples,
                                    max_new_tokens=cfg.max_new_tokens,
                                    temperature=cfg.temperature, top_p=cfg.top_p)
        samples_path, results_path = work / "train_samples.jsonl", work / "train_results.jsonl"
        generate_problems_file(str(warm), "synthetic", str(critic_data), samples_path, sampling,
                               seed=cfg.seed, batch_size=8,
                               max_source_length=cfg.max_source_length, progress=False)
        records = execute_file("synthetic", critic_data, samples_path, results_path,
                               workers=cfg.workers, progress=False)
        log("    " + summary_table(records).replace("\n", "\n    "))

    critic_args = dict(samples=str(samples_path), results=str(results_path),
                       dataset="synthetic", data=str(critic_data), init_model=str(warm),
                       holdout_fraction=0.2, log=quiet)
    with _stage(log, stages, "critic (4-class) + binary critic", total):
        _gin("critic", _common_bindings(cfg, cfg.critic_steps, lr=cfg.learning_rate / 2))
        critic = train_critic(str(work / "critic"), binary=False, **critic_args)
        critic_binary = train_critic(str(work / "critic_binary"), binary=True, **critic_args)
        for key, path in (("critic_accuracy", "critic"), ("binary_critic_accuracy",
                                                          "critic_binary")):
            report = json.loads((work / path / EVAL_FILE).read_text())
            result[key] = report.get("accuracy", float("nan"))
            result[key + "_detail"] = report
        log(f"    held-out accuracy: 4-class {result['critic_accuracy']:.3f}, binary "
            f"{result['binary_critic_accuracy']:.3f}")

    with _stage(log, stages, "repair model", total):
        _gin("repair", _common_bindings(cfg, cfg.repair_steps))
        repair = train_repair(str(work / "repair"), samples=str(samples_path),
                              results=str(results_path), dataset="synthetic",
                              data=str(critic_data), init_model=str(warm), log=quiet)

    def rl_bindings(estimator: str) -> list[str]:
        return _common_bindings(cfg, cfg.rl_steps, lr=cfg.rl_learning_rate) + [
            f"PROBLEMS_PER_STEP = {cfg.rl_problems_per_step}", f"NUM_SAMPLES = {cfg.rl_samples}",
            f"ESTIMATOR = '{estimator}'", f"RLConfig.temperature = {cfg.temperature}",
            f"RLConfig.top_p = {cfg.top_p}", f"RLConfig.workers = {cfg.workers}",
            "LOG_PERIOD = 1"]

    with _stage(log, stages, "online CodeRL (estimator D)", total):
        _gin("rl", rl_bindings("coderl"))
        rl_model = train_rl(str(work / "rl"), actor=str(warm), critic=str(critic),
                            dataset="synthetic", data=str(train_path), log=quiet)
        log(f"    train sample pass rate: first step "
            f"{_metric(work / 'rl', 'sample_pass_rate', 0):.2f}, last step "
            f"{_metric(work / 'rl', 'sample_pass_rate'):.2f}")

    with _stage(log, stages, "CE+ (L_ce for as many updates)", total):
        _gin("finetune", _common_bindings(cfg, cfg.rl_steps, lr=cfg.rl_learning_rate))
        ce_plus = finetune(str(work / "ce_plus"), dataset="synthetic", data=str(train_path),
                           init_model=str(warm), holdout_fraction=0.05, eval_problems=0,
                           log=quiet)

    with _stage(log, stages, "evaluate CE, CE+, CodeRL on the test split", total):
        for key, model in (("ce", warm), ("ce_plus", ce_plus), ("coderl", rl_model)):
            result[key] = evaluate_system(key, str(model), test_path, test, work / "eval" / key,
                                          cfg)
            log(f"    {SYSTEM_NAMES[key]}: pass@1 {result[key]['pass@1']:.1f}, "
                f"pass@{cfg.eval_samples} {result[key][f'pass@{cfg.eval_samples}']:.1f}")

    with _stage(log, stages, "CodeRL + critic sampling", total):
        programs, summary, modes = _critic_sampling(cfg, rl_model, critic_binary, repair, test,
                                                    test_path)
        result["critic_sampling"] = summary
        result["coderl_cs"] = evaluate_system("coderl_cs", None, test_path, test,
                                              work / "eval" / "coderl_cs", cfg, programs)
        result["critic_sampling_by_path"] = _pass_by_path(
            modes, {key: work / "eval" / key / "results_hidden.jsonl"
                    for key in ("coderl", "coderl_cs")})
        log(f"    pass@1 {result['coderl_cs']['pass@1']:.1f}; paths: {summary}")

    if cfg.ablation:
        with _stage(log, stages, "ablation: return estimators A, B, C, D, group", total):
            result["ablation"] = {}
            for estimator in ABLATION_ESTIMATORS:
                out = work / "ablation" / estimator
                _gin("rl", rl_bindings(estimator))
                model = train_rl(str(out), actor=str(warm), critic=str(critic),
                                 dataset="synthetic", data=str(train_path), log=quiet)
                report = evaluate_system(estimator, str(model), test_path, test, out / "eval",
                                         cfg)
                result["ablation"][estimator] = {
                    "pass@1": report["pass@1"],
                    f"pass@{cfg.eval_samples}": report[f"pass@{cfg.eval_samples}"],
                    "last_sample_pass_rate": _metric(out, "sample_pass_rate")}
                log(f"    {estimator}: pass@1 {report['pass@1']:.1f}")

    with _stage(log, stages, "report", total):
        result["seconds"] = round(time.monotonic() - start, 1)
        result["stages"] = stages
        result["config"] = dataclasses.asdict(cfg)
        text = render_report(result, cfg)
        (work / "report.md").write_text(text)
        plot_dir = work / "plots"
        paths = [plots.plot_systems_pass_at_k({SYSTEM_NAMES[k]: result[k]["curve"]
                                               for k in SYSTEMS}, plot_dir / "pass_at_k.png"),
                 plots.plot_systems_outcomes({SYSTEM_NAMES[k]: result[k] for k in SYSTEMS},
                                             plot_dir / "outcomes.png")]
        log(text)
        log(f"    report -> {work / 'report.md'}, plots -> " + ", ".join(map(str, paths)))
    result["seconds"] = round(time.monotonic() - start, 1)
    result["stages"] = stages
    (work / "report.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"[demo] total {result['seconds']:.0f} s")
    return result


def _critic_sampling(cfg: DemoConfig, actor_dir, critic_dir, repair_dir, test, test_path
                     ) -> tuple[list[list[str]], dict]:
    """The RL actor's programs refined/repaired by critic sampling (N per test problem)."""
    from coderl_jax import critic_sampling
    from coderl_jax.generation import load_model, resolve_sampling
    from coderl_jax.sandbox import Executor
    from coderl_jax.scoring import Scorer

    actor = load_model(str(actor_dir))
    repair_config, repair_params, _ = load_model(str(repair_dir))
    sampling = resolve_sampling("synthetic", num_samples=cfg.eval_samples,
                                max_new_tokens=cfg.max_new_tokens,
                                temperature=cfg.temperature, top_p=cfg.top_p)
    with Executor(cfg.workers, hide_paths=[str(test_path.parent.resolve())]) as executor:
        results = critic_sampling.critic_sample(
            test, actor, Scorer.load(str(critic_dir)), executor, sampling,
            repair=(repair_config, repair_params), repair_top_m=cfg.repair_top_m,
            max_source_length=cfg.max_source_length, seed=cfg.seed)
    return ([r.programs for r in results], critic_sampling.summarize(results),
            {r.task_id: r.mode for r in results})


def _pass_by_path(modes: dict, results_paths: dict) -> dict:
    """Per critic-sampling path (refine / repair / repair+refine / none): how many test
    problems took it and the sample pass rate (%) of each system on those problems."""
    from coderl_jax.data.jsonl import read_results

    rows = {key: read_results(path) for key, path in results_paths.items()}
    out = {}
    for mode in sorted(set(modes.values())):
        tasks = {t for t, m in modes.items() if m == mode}
        entry = {"problems": len(tasks)}
        for key, rs in rows.items():
            mine = [r for r in rs if r["task_id"] in tasks]
            entry[key] = 100.0 * sum(r["outcome"] == "PassedTest" for r in mine) / max(len(mine), 1)
        out[mode] = entry
    return out
