"""`coderl finetune` / `generate` / `train-critic` / `train-repair` / `train-rl` from the
command line on a tiny GPT-2 built from scratch (`--gin_file models/tiny_gpt2.gin`: the
stages read `family_config`), as tests/test_training_mains.py runs them on a tiny T5."""

import jax
import pytest

from coderl_jax import checkpoints, cli
from coderl_jax.models.decoder.config import DecoderConfig
from training_utils import (TINY_BINDINGS, VOCAB_SIZE, fast_compiles, make_labelled_samples,
                            make_problems, make_tokenizer, read_jsonl, write_jsonl)

GPT2 = ["--gin_file", "models/tiny_gpt2.gin", f"--gin.DecoderConfig.vocab_size={VOCAB_SIZE}"]


def run(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt2_mains")
    data, problems = make_problems(d)
    samples, results = make_labelled_samples(d, problems)
    with fast_compiles(d / "jax_cache"):
        yield {"dir": d, "data": data, "tok": make_tokenizer(d, problems),
               "samples": samples, "results": results}


@pytest.fixture(scope="module")
def finetuned(env):
    workdir = env["dir"] / "finetune"
    assert run("finetune", "--workdir", workdir, "--dataset", "synthetic", "--data",
               env["data"], "--tokenizer", env["tok"], *TINY_BINDINGS, *GPT2,
               "--gin.finetune.eval_problems=0") == 0
    return workdir / "model"


def test_finetune_then_generate_a_gpt2(env, finetuned, tmp_path):
    config = checkpoints.load_model_config(finetuned)
    assert isinstance(config, DecoderConfig) and config.family == "gpt2"
    assert config.vocab_size == VOCAB_SIZE and config.d_model == 32
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "samples.jsonl"
    write_jsonl(prompts, [{"task_id": "a", "prompt": "Print 1."},
                          {"task_id": "b", "prompt": "Add two numbers."}])
    assert run("generate", "--model", finetuned, "--prompts", prompts, "--out", out,
               "--greedy", "--max-new-tokens", 4, "--no-progress") == 0
    assert [r["task_id"] for r in read_jsonl(out)] == ["a", "b"]


@pytest.fixture(scope="module")
def critic(env, finetuned):
    """`coderl train-critic` (4-class) from the GPT-2 actor: its model dir."""
    workdir = env["dir"] / "critic"
    assert run("train-critic", "--workdir", workdir, "--dataset", "synthetic", "--data",
               env["data"], "--samples", env["samples"], "--results", env["results"],
               "--init-model", finetuned, *TINY_BINDINGS, *GPT2) == 0
    return workdir / "model"


def test_train_critic_from_a_gpt2_actor(critic):
    config = checkpoints.load_model_config(critic)
    assert isinstance(config, DecoderConfig)
    assert checkpoints.critic_classes(critic) is not None
    _, params = checkpoints.load_model_dir(critic)
    assert "lm_head" not in params["backbone"] and jax.tree.leaves(params["head"])


def test_train_repair_and_train_rl_from_gpt2_models(env, finetuned, critic):
    assert run("train-repair", "--workdir", env["dir"] / "repair", "--dataset", "synthetic",
               "--data", env["data"], "--samples", env["samples"], "--results",
               env["results"], "--init-model", finetuned, *TINY_BINDINGS, *GPT2) == 0
    assert isinstance(checkpoints.load_model_config(env["dir"] / "repair" / "model"),
                      DecoderConfig)
    workdir = env["dir"] / "rl"
    assert run("train-rl", "--workdir", workdir, "--actor", finetuned, "--critic", critic,
               "--dataset", "synthetic", "--data", env["data"], *TINY_BINDINGS, *GPT2,
               "--gin.TRAIN_STEPS=1", "--gin.PROBLEMS_PER_STEP=2", "--gin.NUM_SAMPLES=2",
               "--gin.MAX_TARGET_LENGTH=32", "--gin.RLConfig.workers=2") == 0
    assert isinstance(checkpoints.load_model_config(workdir / "model"), DecoderConfig)


@pytest.mark.parametrize("run_file", ["runs/finetune.gin", "runs/critic.gin", "runs/rl.gin"])
def test_apps_gpt_neo_experiment_parses(run_file):
    """The paper's GPT-Neo-on-APPS file with each stage's run file: a GPT-Neo-125M shape in
    bf16 for a run from scratch, the paper's sampling for RL; hub short names resolve."""
    import gin

    from coderl_jax import gin_utils, hub
    from coderl_jax.train import configurables as c

    try:
        gin_utils.parse(["experiments/apps_gpt_neo.gin"], defaults=[run_file])
        config = c.scratch_config()
        assert isinstance(config, DecoderConfig) and config.family == "gpt_neo"
        assert config.d_model == 768 and config.dtype == "bfloat16"
        assert gin.query_parameter("%MAX_SOURCE_LENGTH") + gin.query_parameter(
            "%MAX_TARGET_LENGTH") <= 1024
        if run_file == "runs/rl.gin":
            rl = c.RLConfig()
            assert (rl.temperature, rl.top_p) == (0.6, 0.95)
    finally:
        gin.clear_config()
    assert hub.HUB_IDS["gpt-neo-125m"] == "EleutherAI/gpt-neo-125M"
    assert hub.HUB_IDS["gpt2"] == "openai-community/gpt2"


def test_demo_family_gpt2_builds_the_demo_gpt2_model():
    """`coderl demo --family gpt2`: the demo's scratch config is the model of
    models/demo_gpt2.gin (T5: models/demo_cpu.gin via experiments/demo_cpu.gin), at the
    demo's vocabulary: the dataclass the demo builds and the gin file the CLI reads agree."""
    import gin

    from coderl_jax import gin_utils
    from coderl_jax.demo import DemoConfig
    from coderl_jax.demo import training as demo_training
    from coderl_jax.demo.config import FAMILIES
    from coderl_jax.train import configurables as c

    for family in ("gpt2", "t5"):
        cfg = DemoConfig.quick(family=family)
        built = demo_training._scratch_config(cfg)()
        try:
            files = ["experiments/demo_cpu.gin"] + ([FAMILIES[family]] if family != "t5" else [])
            name = "DecoderConfig" if family != "t5" else "T5Config"
            gin_utils.parse(files, [f"{name}.vocab_size = {cfg.vocab_size}"],
                            defaults=["runs/finetune.gin"])
            from_gin = c.scratch_config()
        finally:
            gin.clear_config()
        assert type(built) is type(from_gin) and built == from_gin, (built, from_gin)
    with pytest.raises(ValueError, match="family"):
        DemoConfig(family="gpt3")
