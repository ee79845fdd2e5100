"""Shared by the RL tests: a tokenizer + a warm-started tiny actor, built once.

`warm_setup(root)` builds (or finds, when an earlier test module of the session built it
under the same root) a directory holding

    train.jsonl   the RL problem set: PROBLEMS level-1 synthetic train problems
    actor/        a tiny T5 (our model dir, tokenizer included) warm-started with L_ce on
                  exactly those problems until its sample pass rate on them is moderate
    critic/       a randomly initialised 4-class critic of the same shape (valid
                  probabilities, no knowledge: the tests that use it only need it frozen)

Everything is seeded. The warm start trains in chunks of CHUNK steps and stops at the first
chunk whose sample pass rate (SAMPLES per problem at the RL temperature, hidden tests) is at
least MIN_RATE, so the set-up does not hinge on the exact step where the steep warm-start
curve crosses the band on this machine's floating point.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

PROBLEMS = 6            # level-1 synthetic train problems in the RL set
VOCAB = 512             # smallest vocabulary with room for 151 merges (361 reserved ids)
SOURCE_LENGTH = 256     # synthetic prompts are 140-200 tokens with this vocabulary
TARGET_LENGTH = 64      # references are 27-47 tokens
# On-policy sampling: the train step's log p is the temperature-1 policy (see test_rl_direction).
TEMPERATURE, TOP_P = 1.0, 1.0
SAMPLES = 8             # samples per problem when measuring a pass rate
# The warm start: 3e-3 on all problems in one batch; the pass rate is checked every CHUNK
# steps from FIRST_CHECK on (below it the rate is ~0 on this set).
CHUNK, FIRST_CHECK, MAX_WARM_STEPS, MIN_RATE = 10, 100, 200, 0.3
WARM_LR = 3e-3


def model_config(family: str = "t5"):
    from coderl_jax.models.config import T5Config

    if family == "gpt2":
        from coderl_jax.models.decoder.config import DecoderConfig

        return DecoderConfig(family="gpt2", vocab_size=VOCAB, d_model=64, num_layers=2,
                             num_heads=4, max_position_embeddings=SOURCE_LENGTH + TARGET_LENGTH,
                             pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=256, num_layers=2,
                    num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=16,
                    relative_attention_max_distance=64, dropout_rate=0.0, pad_token_id=0,
                    eos_token_id=2, decoder_start_token_id=0)


def problems():
    """(problems for the tokenizer's corpus, the RL problem set)."""
    from coderl_jax.data import synthetic

    corpus = synthetic.generate_problems("train", 200, seed=0)
    return corpus, [p for p in corpus if p.difficulty == "level1"][:PROBLEMS]


@dataclasses.dataclass(frozen=True)
class Setup:
    root: pathlib.Path
    data: pathlib.Path
    actor: pathlib.Path
    critic: pathlib.Path
    constant_critic: pathlib.Path
    warm_steps: int
    warm_rate: float


def sample_pass_rate(config, params, tokenizer, problem_list, executor, *, n: int = SAMPLES,
                     seed: int = 1234, max_new_tokens: int = TARGET_LENGTH) -> tuple[float, list]:
    """(share of n samples per problem (temperature TEMPERATURE, top-p TOP_P) passing the
    hidden tests, per-problem shares)."""
    import jax

    from coderl_jax.data.prompts import format_prompt
    from coderl_jax.decoding import SamplingParams, pad_rows
    from coderl_jax.models.family import family_for

    ids = [tokenizer(format_prompt(p, tokenizer, SOURCE_LENGTH))["input_ids"]
           for p in problem_list]
    family = family_for(config)
    inputs, mask = pad_rows(ids, family.pad_id)
    out = family.sample(params, inputs, mask, jax.random.key(seed),
                        SamplingParams(num_samples=n, max_new_tokens=max_new_tokens,
                                       temperature=TEMPERATURE, top_p=TOP_P))
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    codes = [tokenizer.decode(tokens[i, :lengths[i]].tolist(), skip_special_tokens=True)
             for i in range(tokens.shape[0])]
    verdicts = executor.run([(problem_list[i // n], c) for i, c in enumerate(codes)],
                            stop_at_first_failure=True)
    per = [float(np.mean([v.passed for v in verdicts[i * n:(i + 1) * n]]))
           for i in range(len(problem_list))]
    return float(np.mean([v.passed for v in verdicts])), per


def constant_critic(params):
    """Critic params whose every token probability is 1/C at every class: the error head's
    output layer zeroed (its logits are 0 whatever the backbone computes)."""
    head = dict(params["head"])
    head["out"] = {k: np.zeros_like(v) for k, v in head["out"].items()}
    return {**params, "head": head}


def _build(root: pathlib.Path, family: str = "t5") -> Setup:
    import jax

    from coderl_jax import checkpoints, outcomes, partitioning
    from coderl_jax.data import objectives, synthetic
    from coderl_jax.data.tokenizer import train_tokenizer
    from coderl_jax.models.family import family_for
    from coderl_jax.sandbox import Executor
    from coderl_jax.training import batch as batch_lib
    from coderl_jax.training import optimizer as optimizer_lib
    from coderl_jax.training import state as state_lib
    from coderl_jax.training import step as step_lib

    corpus, rl_problems = problems()
    tokenizer = train_tokenizer([p.question for p in corpus]
                                + [s for p in corpus for s in p.solutions], VOCAB)
    config = model_config(family)
    synthetic.save_problems(rl_problems, root / "train.jsonl")
    examples = list(objectives.supervised_examples(rl_problems, tokenizer,
                                                   max_source_length=SOURCE_LENGTH,
                                                   max_target_length=TARGET_LENGTH))
    assert len(examples) == PROBLEMS
    # The warm start is the library's train step on a CE batch of all problems.
    model = step_lib.ActorModel(config)
    mesh = partitioning.make_mesh(-1, 1)
    tx, schedule = optimizer_lib.make_optimizer(
        optimizer_lib.OptimizerConfig(learning_rate=WARM_LR, weight_decay=0.0), MAX_WARM_STEPS)
    state, shardings = state_lib.create_state(model, tx, mesh, 0)
    step_fn = step_lib.make_train_step(model, tx, schedule, mesh, shardings)
    batch = batch_lib.to_global(
        batch_lib.ce_batch(examples, 8, SOURCE_LENGTH, TARGET_LENGTH),
        step_lib.batch_shardings(mesh))
    steps, rate = 0, 0.0
    with Executor(2) as executor:
        while steps < MAX_WARM_STEPS:
            for _ in range(CHUNK if steps else FIRST_CHECK):
                state, _ = step_fn(state, batch)
            steps += CHUNK if steps else FIRST_CHECK
            params = jax.device_get(state.params)
            rate, _ = sample_pass_rate(config, params, tokenizer, rl_problems, executor,
                                       seed=99)
            if rate >= MIN_RATE:
                break
    checkpoints.save_model_dir(root / "actor", config, params, tokenizer=tokenizer, step=steps,
                               metadata={"stage": "test warm start"})
    critic = jax.device_get(family_for(config).critic_init(len(outcomes.OUTCOMES),
                                                           jax.random.key(7)))
    checkpoints.save_model_dir(root / "critic", config, critic, tokenizer=tokenizer,
                               critic_classes=outcomes.OUTCOMES)
    checkpoints.save_model_dir(root / "constant_critic", config, constant_critic(critic),
                               tokenizer=tokenizer, critic_classes=outcomes.OUTCOMES)
    setup = Setup(root, root / "train.jsonl", root / "actor", root / "critic",
                  root / "constant_critic", steps, rate)
    (root / "setup.json").write_text(json.dumps({"warm_steps": steps, "warm_rate": rate}))
    return setup


def warm_setup(root: pathlib.Path, family: str = "t5") -> Setup:
    """The set-up under `root` (built on first use; see the module docstring); `family`
    "gpt2" warm-starts a tiny GPT-2 actor (and critic) instead of the tiny T5."""
    root = pathlib.Path(root)
    done = root / "setup.json"
    if not done.is_file():
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        _build(root, family)
        print(f"[rl_utils] warm set-up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    info = json.loads(done.read_text())
    return Setup(root, root / "train.jsonl", root / "actor", root / "critic",
                 root / "constant_critic", info["warm_steps"], info["warm_rate"])


def session_setup(tmp_path_factory, family: str = "t5") -> Setup:
    """`warm_setup` in the session's base temp dir, so every test module shares one."""
    name = "rl_warm" if family == "t5" else f"rl_warm_{family}"
    return warm_setup(tmp_path_factory.getbasetemp() / name, family)


def gin_bindings(**extra) -> list[str]:
    """The bindings of a tiny online RL run on the set-up (override with keyword args:
    NAME=value gives "NAME = value" with the value as Python literal)."""
    values = dict(TRAIN_STEPS=2, MAX_SOURCE_LENGTH=SOURCE_LENGTH, MAX_TARGET_LENGTH=TARGET_LENGTH,
                  PROBLEMS_PER_STEP=PROBLEMS, NUM_SAMPLES=4, ESTIMATOR="A", LOG_PERIOD=1,
                  CHECKPOINT_PERIOD=1000, PROGRESS=False, WEIGHT_DECAY=0.0,
                  LEARNING_RATE=1e-3, SEED=0)
    values["RLConfig.workers"] = 2
    values["RLConfig.temperature"] = TEMPERATURE
    values["RLConfig.top_p"] = TOP_P
    values.update(extra)
    return [f"{k} = {v!r}" for k, v in values.items()]


def cli_gin_flags(**extra) -> list[str]:
    """`gin_bindings` as `--gin.NAME=VALUE` command-line flags."""
    return ["--gin." + b.replace(" = ", "=", 1) for b in gin_bindings(**extra)]


def run_train_rl(workdir, setup: Setup, bindings: list[str], **kwargs):
    """`train_rl` in this process, configured as `coderl train-rl` configures it (gin:
    runs/rl.gin + `bindings`, `coderl_jax.train.configurables`); gin cleared after."""
    import gin

    from coderl_jax import gin_utils
    from coderl_jax.train import configurables as c

    gin_utils.parse([], bindings, defaults=["runs/rl.gin"])
    try:
        return c.train_rl(str(workdir), actor=str(setup.actor), dataset="synthetic",
                          data=str(setup.data), rl=c.RLConfig(), **c.training_configs(),
                          log=lambda s: None, **kwargs)
    finally:
        gin.clear_config()


def coderl_env(**extra) -> dict:
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def rollouts_to_files(rollout_file, out_dir) -> dict[str, pathlib.Path]:
    """An online step's rollouts (`RLConfig.save_rollouts`) as the offline mode's four files:
    samples + results of the K samples, and of the greedy baselines (results-file lines as
    `jsonl.result_record` writes them; the samples keep their "tokens")."""
    import types

    from coderl_jax.data import jsonl

    records = [json.loads(line) for line in pathlib.Path(rollout_file).read_text().splitlines()]
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, is_baseline in (("samples", False), ("baseline_samples", True)):
        rows = [r for r in records if r["baseline"] == is_baseline]
        results = [jsonl.result_record(r["task_id"], i, types.SimpleNamespace(
            outcome=r["outcome"], error_type=r["error_type"], test_results=r["test_results"],
            reward=r["reward"])) for i, r in enumerate(rows)]
        paths[name] = out_dir / f"{name}.jsonl"
        results_name = name.replace("samples", "results")
        paths[results_name] = out_dir / f"{results_name}.jsonl"
        jsonl.write_jsonl(paths[name], [{"task_id": r["task_id"], "code": r["code"],
                                         "tokens": r["tokens"]} for r in rows])
        jsonl.write_results(paths[results_name], results)
    return paths


def descendants(pid: int) -> set[int]:
    """Pids of every live process below `pid` (children, their children, ...)."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parent[int(name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# XLA's cheap compile mode for the `coderl` subprocesses (compiling dominates their runs).
FAST_COMPILES = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
WORKER_MARK = "coderl_jax.sandbox.worker"


def finished_steps(checkpoint_dir) -> list[int]:
    """Steps orbax has finalised (an in-progress save lives under a temporary name)."""
    directory = pathlib.Path(checkpoint_dir)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _parent_and_uid(pid: int) -> tuple[int, int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["PPid"]), int(fields["Uid"].split()[1])
    except (OSError, KeyError, ValueError):
        return -1, -1


def sandbox_programs(marker: str) -> list[int]:
    """The programs among `sandbox_processes(marker)`: as root, those running under another
    uid (the sandbox drops privileges); otherwise those whose parent is a worker."""
    found = sandbox_processes(marker)
    marked = set(found)
    out = []
    for pid in found:
        parent, uid = _parent_and_uid(pid)
        if (uid != os.geteuid()) if os.geteuid() == 0 else (parent in marked):
            out.append(pid)
    return out


def sandbox_processes(marker: str) -> list[int]:
    """Live sandbox workers, and the programs they forked (a fork keeps the worker's command
    line), whose command line also holds `marker` (e.g. the problem file's directory, which
    the RL stage hides from programs: unique to a test's run)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            text = cmdline(int(name))
            if WORKER_MARK in text and marker in text and alive(int(name)):
                found.append(int(name))
    return found


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the only address multi-process tests use)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
