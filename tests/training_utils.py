"""Shared pieces of the training-main tests: a tiny model, tiny data, fast compiles.

The mains run as `coderl ...` with `--gin_file experiments/demo_cpu.gin` plus TINY_BINDINGS
(a d32, 1+1-layer T5 over a 512-token vocabulary, batch 4), on a dozen synthetic problems.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket
import sysconfig

from coderl_jax import outcomes

VOCAB_SIZE = 512
TINY_MODEL = [
    f"--gin.T5Config.vocab_size={VOCAB_SIZE}", "--gin.T5Config.d_model=32",
    "--gin.T5Config.d_kv=8", "--gin.T5Config.d_ff=64", "--gin.T5Config.num_heads=2",
    "--gin.T5Config.num_layers=1", "--gin.T5Config.num_decoder_layers=1",
]
TINY_BINDINGS = [
    "--gin_file", "experiments/demo_cpu.gin", *TINY_MODEL,
    "--gin.TRAIN_STEPS=3", "--gin.BATCH_SIZE=4", "--gin.LOG_PERIOD=1",
    "--gin.CHECKPOINT_PERIOD=2", "--gin.PROGRESS=False",
    "--gin.MAX_SOURCE_LENGTH=256", "--gin.MAX_TARGET_LENGTH=96",
]
# Environment for mains run as subprocesses: CPU, and XLA's cheap compile mode (compiling
# dominates a 3-step run on a tiny model; every run a test compares uses the same mode).
SUBPROCESS_ENV = {"JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def make_problems(directory: pathlib.Path, n: int = 12) -> tuple[pathlib.Path, list]:
    """n synthetic train problems in directory/train.jsonl."""
    from coderl_jax.data import synthetic

    problems = synthetic.generate_problems("train", n, 0)
    path = directory / "train.jsonl"
    synthetic.save_problems(problems, path)
    return path, problems


def make_tokenizer(directory: pathlib.Path, problems) -> pathlib.Path:
    """A VOCAB_SIZE byte-level BPE trained on the problems' prompts and solutions."""
    from coderl_jax.data import prompts, tokenizer

    texts = [s for p in problems for s in p.solutions] * 3
    texts += [prompts.format_prompt(p) for p in problems]
    out = directory / "tok"
    tokenizer.save_tokenizer(tokenizer.train_tokenizer(texts, VOCAB_SIZE), out)
    return out


def make_corpus(directory: pathlib.Path) -> pathlib.Path:
    """A folder of three standard-library .py files (~45 kB: enough for a 512 vocab)."""
    out = directory / "corpus"
    out.mkdir()
    for name in ("textwrap.py", "string.py", "shlex.py"):
        shutil.copy(pathlib.Path(sysconfig.get_paths()["stdlib"]) / name, out / name)
    return out


# A program per outcome, with its results-file verdict (the reference solution passes).
_BAD = (("def solve(:\n", outcomes.COMPILE_ERROR, "syntaxerror", [-2]),
        ("print(undefined_name)\n", outcomes.RUNTIME_ERROR, "nameerror", [-1]),
        ("print(0)\n", outcomes.FAILED_TEST, None, [False]))


def make_labelled_samples(directory: pathlib.Path, problems) -> tuple[pathlib.Path, pathlib.Path]:
    """A samples file and its results file: per problem one program of each outcome."""
    samples, results = [], []
    for p in problems:
        rows = [*_BAD, (p.solutions[0], outcomes.PASSED_TEST, None, [True])]
        for code, outcome, error_type, tests in rows:
            results.append({"task_id": p.task_id, "sample_index": len(samples),
                            "outcome": outcome, "error_type": error_type,
                            "test_results": tests, "reward": outcomes.RETURNS[outcome]})
            samples.append({"task_id": p.task_id, "code": code})
    s_path, r_path = directory / "samples.jsonl", directory / "results.jsonl"
    write_jsonl(s_path, samples)
    write_jsonl(r_path, results)
    return s_path, r_path


def write_jsonl(path: pathlib.Path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def read_jsonl(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_per_step(records: list[dict], key: str = "loss") -> dict[int, float]:
    """{step: value of `key`} from metrics records, the last record of a step winning."""
    return {r["step"]: r[key] for r in records if key in r}


@contextlib.contextmanager
def fast_compiles(cache_dir: pathlib.Path):
    """XLA's cheap compile mode and a persistent compilation cache (runs of the same shapes
    compile once) for the mains run in this process; JAX's settings restored after."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_disable_most_optimizations", "jax_compilation_cache_dir",
             "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    saved = {name: jax.config.values[name] for name in names}
    values = dict(zip(names, (True, str(cache_dir), 0.0, 0)))
    for name, value in values.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **SUBPROCESS_ENV)
    env.update(extra)
    return env
