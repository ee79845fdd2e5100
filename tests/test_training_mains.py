"""The training mains from the command line: `coderl pretrain | finetune | train-critic |
train-repair` each run 3 steps of the CPU demo experiment (shrunk to a tiny model) and leave a
model dir the next step loads, metrics.jsonl and TensorBoard events; bad input fails at
start-up with exit code 2 and a message naming the binding, file, line or path.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from coderl_jax import checkpoints, cli, outcomes
from coderl_jax.training import loop
from training_utils import (TINY_BINDINGS, fast_compiles, make_corpus, make_labelled_samples,
                            make_problems, make_tokenizer, read_jsonl, write_jsonl)

LOGGED = ("step", "loss", "learning_rate", "tokens_per_second")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Problems, tokenizer, labelled samples; the mains compile cheaply and share a cache."""
    d = tmp_path_factory.mktemp("mains")
    data, problems = make_problems(d)
    samples, results = make_labelled_samples(d, problems)
    with fast_compiles(d / "jax_cache"):
        yield {"dir": d, "data": data, "problems": problems, "tok": make_tokenizer(d, problems),
               "samples": samples, "results": results}


@pytest.fixture(scope="module")
def finetuned(env):
    """`coderl finetune` 3 steps from scratch; its workdir (the others start from its model)."""
    workdir = env["dir"] / "finetune"
    rc = cli.main(["finetune", "--workdir", str(workdir), "--dataset", "synthetic",
                   "--data", str(env["data"]), "--tokenizer", str(env["tok"]), *TINY_BINDINGS,
                   "--gin.finetune.eval_problems=0"])
    assert rc == 0
    return workdir


def run(*argv) -> int:
    return cli.main([str(a) for a in argv])


def assert_run_outputs(workdir: pathlib.Path, steps=(1, 2, 3), checkpoint_steps=(2, 3)):
    """metrics.jsonl logs every step with LOGGED, TensorBoard has events, checkpoints kept."""
    records = loop.read_metrics(workdir)
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == list(steps)
    for r in train:
        assert all(k in r for k in LOGGED), r
        assert np.isfinite(r["loss"]) and r["tokens_per_second"] > 0 and r["learning_rate"] > 0
    events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    assert all(tag.encode() in events[0].read_bytes() for tag in LOGGED[1:])  # scalar tags
    store = checkpoints.CheckpointStore(workdir / loop.CHECKPOINT_DIR, read_only=True)
    assert store.all_steps() == list(checkpoint_steps)
    return records


def assert_loadable_actor(model_dir: pathlib.Path, step: int = 3):
    """`coderl generate --model` loads it (generation.load_model is what it calls)."""
    from coderl_jax.generation import load_model

    config, params, tokenizer = load_model(str(model_dir))
    assert checkpoints.critic_classes(model_dir) is None
    assert config.d_model == 32 and len(tokenizer) <= config.vocab_size
    assert jax.tree.leaves(params)
    with checkpoints.CheckpointStore(model_dir / "checkpoints", read_only=True) as store:
        assert store.all_steps() == [step]


def test_finetune_writes_model_metrics_and_events(env, finetuned, tmp_path):
    records = assert_run_outputs(finetuned)
    assert any("eval/heldout_nll" in r for r in records)
    # The full consumer: `coderl generate --model workdir/model` samples from it.
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "samples.jsonl"
    write_jsonl(prompts, [{"task_id": "a", "prompt": "Print 1."}])
    assert run("generate", "--model", finetuned / "model", "--prompts", prompts, "--out", out,
               "--greedy", "--max-new-tokens", 4, "--no-progress") == 0
    assert [r["task_id"] for r in read_jsonl(out)] == ["a"]


def test_pretrain_on_a_folder_of_python_files(env):
    workdir = env["dir"] / "pretrain"
    rc = run("pretrain", "--workdir", workdir, "--corpus", make_corpus(env["dir"]),
             *TINY_BINDINGS, "--gin.pretrain.vocab_size=512", "--gin.ENCODER_LENGTH=64",
             "--gin.DECODER_LENGTH=32")
    assert rc == 0
    assert_run_outputs(workdir)
    assert (workdir / "tokenizer" / "tokenizer.json").is_file()  # trained on the corpus
    assert_loadable_actor(workdir / "model")


@pytest.mark.parametrize("binary", [False, True], ids=["4-class", "binary"])
def test_train_critic(env, finetuned, binary):
    workdir = env["dir"] / f"critic_{binary}"
    # The 4-class critic's backbone starts from the warm actor, the binary one from scratch.
    start = ["--binary", "--tokenizer", env["tok"]] if binary else [
        "--init-model", finetuned / "model"]
    rc = run("train-critic", "--workdir", workdir, "--samples", env["samples"],
             "--results", env["results"], "--dataset", "synthetic", "--data", env["data"],
             *start, *TINY_BINDINGS)
    assert rc == 0
    records = assert_run_outputs(workdir)
    assert all("accuracy" in r for r in records if "loss" in r)
    classes = outcomes.BINARY_OUTCOMES if binary else outcomes.OUTCOMES
    assert checkpoints.critic_classes(workdir / "model") == list(classes)
    config, params = checkpoints.load_model_dir(workdir / "model")
    assert set(params) == {"backbone", "head"}
    report = json.loads((workdir / "critic_eval.json").read_text())
    assert report["classes"] == list(classes) and report["rows"] > 0


def test_train_repair(env, finetuned):
    workdir = env["dir"] / "repair"
    rc = run("train-repair", "--workdir", workdir, "--samples", env["samples"],
             "--results", env["results"], "--dataset", "synthetic", "--data", env["data"],
             "--init-model", finetuned / "model", *TINY_BINDINGS)
    assert rc == 0
    assert_run_outputs(workdir)
    assert_loadable_actor(workdir / "model")


def test_rerunning_a_finished_run_keeps_its_model(env, finetuned, tmp_path, capsys):
    """A second `coderl finetune` on a finished workdir resumes at the end and rewrites the
    same model dir (it used to fail: the model dir's checkpoint step already existed)."""
    workdir = tmp_path / "finished"
    shutil.copytree(finetuned, workdir)
    before = checkpoints.load_model_dir(workdir / "model")[1]
    rc = run("finetune", "--workdir", workdir, "--dataset", "synthetic", "--data", env["data"],
             "--tokenizer", env["tok"], *TINY_BINDINGS, "--gin.finetune.eval_problems=0")
    assert rc == 0
    assert "resumed from" in capsys.readouterr().out
    assert len(loop.read_metrics(workdir)) == len(loop.read_metrics(finetuned))
    after = checkpoints.load_model_dir(workdir / "model")[1]
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------ bad input fails early
def _fails(capsys, argv, *needles, workdir=None):
    rc = run(*argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    if workdir is not None:
        assert not pathlib.Path(workdir).exists(), "failed after starting work"
    return err


def _finetune_argv(env, workdir, *extra):
    return ["finetune", "--workdir", workdir, "--dataset", "synthetic", "--data", env["data"],
            "--tokenizer", env["tok"], "--gin_file", "experiments/demo_cpu.gin", *extra]


@pytest.mark.parametrize("binding, needles", [
    ("--gin.TRAN_STEPS=3", ["'TRAN_STEPS'", "did you mean 'TRAIN_STEPS'"]),
    ("--gin.TrainerConfig.trian_steps=3", ["trian_steps"]),
    ("--gin.TrainerConfg.train_steps=3", ["TrainerConfg"]),
    ("--gin.TRAIN_STEPS=abc", ["TRAIN_STEPS = abc", "'abc'"]),
    ("--gin.TRAIN_STEPS=0", ["train_steps must be >= 1"]),
], ids=["unknown-macro", "misspelt-parameter", "misspelt-configurable", "bad-value", "zero"])
def test_bad_gin_binding_names_it(env, tmp_path, capsys, binding, needles):
    _fails(capsys, _finetune_argv(env, tmp_path / "w", binding), *needles,
           workdir=tmp_path / "w")


def test_missing_gin_file_names_it(env, tmp_path, capsys):
    _fails(capsys, _finetune_argv(env, tmp_path / "w", "--gin_file", "runs/no_such.gin"),
           "runs/no_such.gin", workdir=tmp_path / "w")


def test_unbound_required_settings_name_them(env, finetuned, tmp_path, capsys):
    """Without an experiment file a scratch run has no network shape and no run has a
    step count; each fails naming the missing binding."""
    base = ["finetune", "--dataset", "synthetic", "--data", env["data"]]
    _fails(capsys, [*base, "--workdir", tmp_path / "a", "--tokenizer", env["tok"],
                    "--gin.TRAIN_STEPS=3"], "model_config", "['config']", "--gin_file",
           workdir=tmp_path / "a")
    _fails(capsys, [*base, "--workdir", tmp_path / "b", "--init-model", finetuned / "model"],
           "TrainerConfig.train_steps is required", "--gin.TRAIN_STEPS",
           workdir=tmp_path / "b")


def test_finetune_without_reference_solutions_names_the_data(env, tmp_path, capsys,
                                                             benchmark_data):
    synthetic = tmp_path / "no_solutions.jsonl"
    write_jsonl(synthetic, [{**r, "solutions": []} for r in read_jsonl(env["data"])])
    apps = tmp_path / "apps_no_solutions.jsonl"
    with open(benchmark_data / "apps" / "train.jsonl") as f:
        record = json.loads(f.readline())
    write_jsonl(apps, [{**record, "solutions": "[]"}])
    for dataset, path in (("synthetic", synthetic), ("apps", apps)):
        workdir = tmp_path / dataset
        argv = _finetune_argv(env, workdir)
        argv[argv.index("--dataset") + 1], argv[argv.index("--data") + 1] = dataset, path
        _fails(capsys, argv, path, "reference solution", workdir=workdir)


def test_results_that_do_not_match_the_samples_name_file_and_line(env, tmp_path, capsys):
    results = read_jsonl(env["results"])
    short = tmp_path / "short.jsonl"
    write_jsonl(short, results[:-3])
    swapped = tmp_path / "swapped.jsonl"
    other = next(r["task_id"] for r in results if r["task_id"] != results[5]["task_id"])
    write_jsonl(swapped, [{**r, "task_id": other} if i == 5 else r
                          for i, r in enumerate(results)])
    cases = (("train-critic", short, f"{short}:{len(results) - 2}:",
              f"{len(results) - 3} results for {len(results)} samples"),
             ("train-repair", swapped, f"{swapped}:6:", f"line 6 of {env['samples']}"))
    for command, bad, where, what in cases:
        workdir = tmp_path / command
        _fails(capsys, [command, "--workdir", workdir, "--samples", env["samples"],
                        "--results", bad, "--dataset", "synthetic", "--data", env["data"],
                        "--tokenizer", env["tok"], *TINY_BINDINGS], where, what,
               workdir=workdir)


@pytest.mark.parametrize("damage", ["truncated-array", "missing-item"])
def test_corrupt_checkpoint_names_its_path(env, finetuned, tmp_path, capsys, damage):
    workdir = tmp_path / "w"
    shutil.copytree(finetuned / loop.CHECKPOINT_DIR, workdir / loop.CHECKPOINT_DIR)
    step_dir = workdir / loop.CHECKPOINT_DIR / "3"
    if damage == "missing-item":
        shutil.rmtree(step_dir / "params")
    else:
        for f in (step_dir / "params").rglob("d/*"):
            if f.is_file():
                f.write_bytes(f.read_bytes()[:7])
    err = _fails(capsys, ["finetune", "--workdir", workdir, "--dataset", "synthetic",
                          "--data", env["data"], "--tokenizer", env["tok"], *TINY_BINDINGS,
                          "--gin.TRAIN_STEPS=4"], f"cannot resume from {step_dir}")
    assert ("has no item(s) ['params']" if damage == "missing-item" else "params/") in err
    assert not (workdir / "model").exists()


def test_training_help_needs_no_jax():
    """`coderl <main> --help` lists the shortcut flags and the --gin.* syntax without
    loading JAX (the mains import it inside `main`)."""
    code = (
        "import sys, contextlib, io\n"
        "from coderl_jax.cli import main\n"
        "for cmd in ('pretrain', 'finetune', 'train-critic', 'train-repair', 'train-rl'):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            main([cmd, '--help'])\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, cmd\n"
        "    text = out.getvalue()\n"
        "    assert '--workdir' in text and '--gin_file' in text and '--gin.NAME' in text, text\n"
        "print('JAX' if 'jax' in sys.modules else 'NOJAX')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("NOJAX")
