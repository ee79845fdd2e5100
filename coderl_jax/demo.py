"""`coderl demo`: the pipeline built so far, end to end, on the embedded synthetic benchmark.

Every stage calls the same library function as its own CLI command and leaves its files in
the work dir, so each can be inspected or rerun by hand:

    data/train.jsonl, data/test.jsonl     synthetic problems (coderl_jax.data.synthetic)
    tokenizer/                            byte-level BPE with CodeT5's special tokens, trained
                                          on the standard library + the train references
    model/                                a tiny T5 actor in our checkpoint format
    prompts.jsonl                         APPS-format prompts of the test split
    samples.jsonl                         `coderl generate` (temperature + top-p sampling)
    results_hidden.jsonl, results_example.jsonl
                                          `coderl execute` on hidden and example tests
    results_reference.jsonl               the reference solutions, judged the same way
    report.md, report.json, plots/        `coderl evaluate` (pass@k, n@k, outcomes, subtypes)

The actor is randomly initialised: the training stages (warm start, critic, RL) are not
part of the pipeline yet, so its pass@k is expected to be ~0. The reference row shows what the
sandbox and metrics give for correct programs on the same problems (100% by construction).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
from typing import Any, Callable, Iterator


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; the defaults finish in a few minutes on 2 CPU cores."""

    workdir: str = "demo_workdir"
    seed: int = 0
    num_train_problems: int = 200
    num_test_problems: int = 40
    vocab_size: int = 4096
    tokenizer_corpus_bytes: int = 3_000_000
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 256
    num_samples: int = 5
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 64
    max_source_length: int = 384
    batch_size: int = 8
    workers: int | None = None


@contextlib.contextmanager
def _stage(log: Callable[[str], None], name: str) -> Iterator[None]:
    """Logs a stage's name, then its wall time when it finishes."""
    start = time.monotonic()
    log(f"[demo] {name} ...")
    yield
    log(f"[demo] {name}: done in {time.monotonic() - start:.1f} s")


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every stage into `cfg.workdir`; returns the evaluation reports (model, reference)."""
    import jax

    from coderl_jax import checkpoints, metrics, plots
    from coderl_jax.data import corpus, jsonl, prompts, synthetic, tokenizer
    from coderl_jax.decoding import SamplingParams
    from coderl_jax.execution import execute_file, summary_table
    from coderl_jax.generation import generate_file
    from coderl_jax.models.config import T5Config
    from coderl_jax.models.t5 import init_params

    work = pathlib.Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    train_path, test_path = work / "data" / "train.jsonl", work / "data" / "test.jsonl"

    with _stage(log, "1/6 synthetic problems"):
        train = synthetic.generate_problems("train", cfg.num_train_problems, cfg.seed)
        test = synthetic.generate_problems("test", cfg.num_test_problems, cfg.seed)
        synthetic.save_problems(train, train_path)
        synthetic.save_problems(test, test_path)
        log(f"    {len(train)} train / {len(test)} test problems -> {train_path.parent}")

    with _stage(log, "2/6 tokenizer"):
        texts = corpus.read_corpus(max_bytes=cfg.tokenizer_corpus_bytes).texts()
        texts += [s for p in train for s in p.solutions]
        tok = tokenizer.train_tokenizer(texts, cfg.vocab_size)
        tokenizer.save_tokenizer(tok, work / "tokenizer")
        log(f"    vocab {len(tok)} from {len(texts)} documents -> {work / 'tokenizer'}")

    with _stage(log, "3/6 actor model (random init)"):
        config = T5Config(
            vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_model // cfg.num_heads,
            d_ff=cfg.d_ff, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
            dropout_rate=0.0,
        )
        params = init_params(config, jax.random.key(cfg.seed))
        model_dir = checkpoints.save_model_dir(work / "model", config, params, tokenizer=tok)
        num_params = sum(x.size for x in jax.tree.leaves(params))
        log(f"    {num_params:,} parameters -> {model_dir}")

    with _stage(log, "4/6 generate"):
        prompts_path = work / "prompts.jsonl"
        prompts.write_prompts_file(test, prompts_path, tok, cfg.max_source_length)
        sampling = SamplingParams(num_samples=cfg.num_samples, max_new_tokens=cfg.max_new_tokens,
                                  temperature=cfg.temperature, top_p=cfg.top_p)
        written = generate_file(str(model_dir), prompts_path, work / "samples.jsonl", sampling,
                                seed=cfg.seed, batch_size=cfg.batch_size,
                                max_source_length=cfg.max_source_length)
        log(f"    {written} samples -> {work / 'samples.jsonl'}")

    with _stage(log, "5/6 execute"):
        reference_samples = work / "reference_samples.jsonl"
        jsonl.write_jsonl(reference_samples,
                          ({"task_id": p.task_id, "code": p.solutions[0]} for p in test))
        runs = {
            "results_hidden.jsonl": ("samples.jsonl", "hidden"),
            "results_example.jsonl": ("samples.jsonl", "example"),
            "results_reference.jsonl": ("reference_samples.jsonl", "hidden"),
            "results_reference_example.jsonl": ("reference_samples.jsonl", "example"),
        }
        records = {}
        for out, (samples, tests) in runs.items():
            records[out] = execute_file("synthetic", test_path, work / samples, work / out,
                                        tests=tests, workers=cfg.workers, progress=False)
        log("    model samples, hidden tests:\n" + summary_table(records["results_hidden.jsonl"]))

    with _stage(log, "6/6 evaluate"):
        difficulties = {p.task_id: p.difficulty for p in test}
        ks = sorted({1, cfg.num_samples})
        model_report = metrics.evaluate(
            records["results_hidden.jsonl"], ks, [(1, k) for k in ks],
            records["results_example.jsonl"], difficulties)
        reference_report = metrics.evaluate(
            records["results_reference.jsonl"], [1], [(1, 1)],
            records["results_reference_example.jsonl"], difficulties)
        text = (
            "# coderl demo\n\n"
            f"Synthetic test split: {len(test)} problems, {cfg.num_samples} samples each "
            f"(temperature {cfg.temperature}, top-p {cfg.top_p}), untrained tiny actor.\n\n"
            "## Actor samples\n\n" + metrics.markdown_table(model_report) + "\n\n"
            "## Reference solutions (sanity check of sandbox and metrics)\n\n"
            + metrics.markdown_table(reference_report) + "\n"
        )
        (work / "report.md").write_text(text)
        (work / "report.json").write_text(json.dumps(
            {"model": model_report, "reference": reference_report}, indent=2) + "\n")
        plot_paths = plots.plot_report(model_report, work / "plots")
        log(text)
        log(f"    report -> {work / 'report.md'}, plots -> "
            + ", ".join(str(p) for p in plot_paths))
    return {"model": model_report, "reference": reference_report}
