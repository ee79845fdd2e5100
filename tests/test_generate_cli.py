"""`coderl generate` end to end on a tiny random model written to tmp_path: as a Hugging Face
dir (checked token for token against transformers' own greedy `generate`) and as our orbax
model dir; sampling is reproducible and independent of the batch size; bad input is a clear
error naming the file and line."""

import json
import pathlib
import sys

import jax
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import tiny_config, v11  # noqa: E402

from coderl_jax import checkpoints, cli  # noqa: E402
from coderl_jax.models.hf import export_hf  # noqa: E402
from coderl_jax.models.t5 import init_params  # noqa: E402

PROMPTS = [
    {"task_id": "a/0", "prompt": "def add(a, b):\n    return a + b"},
    {"task_id": 17, "prompt": "print('hello world')"},
    {"task_id": "c", "prompt": "for i in range(10):\n    x = i * i  # a longer prompt here"},
]
MAX_NEW = 8


def build_tokenizer(vocab_size: int):
    """Byte-level BPE with CodeT5's special tokens (<pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4);
    encodes as `<s> ... </s>` like CodeT5's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([p["prompt"] for p in PROMPTS] * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", mask_token="<mask>")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(config, HF dir, our model dir) for one random tiny model and tokenizer."""
    root = tmp_path_factory.mktemp("models")
    config = v11(tiny_config(vocab_size=300))  # v1.1: varied greedy outputs from random init
    tokenizer = build_tokenizer(config.vocab_size)
    assert len(tokenizer) <= config.vocab_size
    assert tokenizer.convert_tokens_to_ids(["<pad>", "<s>", "</s>"]) == [0, 1, 2]
    params = init_params(config, jax.random.key(0))
    export_hf(config, params, root / "hf", tokenizer=tokenizer)
    checkpoints.save_model_dir(root / "ours", config, params, tokenizer=tokenizer, step=5)
    return config, root / "hf", root / "ours"


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def run(model, prompts, out, *extra):
    return cli.main(["generate", "--model", str(model), "--prompts", str(prompts),
                     "--out", str(out), "--max-new-tokens", str(MAX_NEW), "--no-progress",
                     *extra])


def read_samples(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_greedy_on_hf_dir_matches_transformers_generate(models, prompts_file, tmp_path):
    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    _, hf_dir, _ = models
    out = tmp_path / "samples.jsonl"
    assert run(hf_dir, prompts_file, out, "--greedy", "--batch-size", "2") == 0
    samples = read_samples(out)
    assert [s["task_id"] for s in samples] == [p["task_id"] for p in PROMPTS]
    assert all(set(s) == {"task_id", "code"} for s in samples)

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = T5ForConditionalGeneration.from_pretrained(str(hf_dir)).eval()
    for sample, prompt in zip(samples, PROMPTS):
        ids = torch.tensor([tokenizer(prompt["prompt"])["input_ids"]])
        with torch.no_grad():
            generated = model.generate(ids, max_new_tokens=MAX_NEW, do_sample=False,
                                       num_beams=1)
        expected = tokenizer.decode(generated[0], skip_special_tokens=True)
        assert sample["code"] == expected
    assert len({s["code"] for s in samples}) > 1


def test_our_checkpoint_dir_gives_the_same_programs(models, prompts_file, tmp_path):
    _, hf_dir, ours = models
    assert run(hf_dir, prompts_file, tmp_path / "hf.jsonl", "--greedy") == 0
    assert run(ours, prompts_file, tmp_path / "ours.jsonl", "--greedy") == 0
    assert read_samples(tmp_path / "ours.jsonl") == read_samples(tmp_path / "hf.jsonl")
    assert run(ours, prompts_file, tmp_path / "s5.jsonl", "--greedy", "--step", "5") == 0
    assert run(ours, prompts_file, tmp_path / "s6.jsonl", "--greedy", "--step", "6") == 2


def test_sampling_is_seeded_and_independent_of_batch_size(models, prompts_file, tmp_path):
    _, _, ours = models
    args = ("--num-samples", "3", "--temperature", "1.5", "--top-p", "0.95", "--seed", "4")
    assert run(ours, prompts_file, tmp_path / "a.jsonl", *args, "--batch-size", "2") == 0
    assert run(ours, prompts_file, tmp_path / "b.jsonl", *args, "--batch-size", "3") == 0
    assert run(ours, prompts_file, tmp_path / "c.jsonl", *args[:-1], "5") == 0
    a = read_samples(tmp_path / "a.jsonl")
    # N consecutive lines per prompt, prompts in file order.
    assert [s["task_id"] for s in a] == [p["task_id"] for p in PROMPTS for _ in range(3)]
    assert a == read_samples(tmp_path / "b.jsonl")
    assert a != read_samples(tmp_path / "c.jsonl")
    assert len({s["code"] for s in a}) > 3


def test_malformed_prompt_line_names_file_and_line(models, tmp_path, capsys):
    _, hf_dir, _ = models
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PROMPTS[0]) + "\n\n" + '{"task_id": 3, "prompt": 5}\n')
    assert run(hf_dir, bad, tmp_path / "out.jsonl", "--greedy") == 2
    assert f"{bad}:3: field 'prompt' must be str, got int" in capsys.readouterr().err
    bad.write_text('{"task_id": 1, "prompt": "x"}\n{"task_id": 2, "prompt": "y"\n')
    assert run(hf_dir, bad, tmp_path / "out.jsonl", "--greedy") == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err
    bad.write_text('{"prompt": "x"}\n')
    assert run(hf_dir, bad, tmp_path / "out.jsonl", "--greedy") == 2
    assert f"{bad}:1: missing field 'task_id'" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(prompts_file, tmp_path, capsys):
    missing = tmp_path / "no_model"
    assert run(missing, prompts_file, tmp_path / "out.jsonl", "--greedy") == 2
    assert "no_model" in capsys.readouterr().err


def test_greedy_with_top_p_is_rejected(models, prompts_file, tmp_path, capsys):
    _, hf_dir, _ = models
    assert run(hf_dir, prompts_file, tmp_path / "o.jsonl", "--greedy", "--top-p", "0.5") == 2
    assert "--top-p" in capsys.readouterr().err


def test_long_prompts_keep_their_answer_marker(models, monkeypatch):
    """A prompt over max_source_length loses statement text, never its end marker."""
    from coderl_jax import generation
    from coderl_jax.decoding import SamplingParams
    from coderl_jax.models import t5_sampling

    config, hf_dir, _ = models
    _, params, tokenizer = generation.load_model(str(hf_dir))
    long_prompt = "\nQUESTION:\n" + "x = 1\n" * 200 + "\nUse Standard Input format\nANSWER:\n"
    seen = []
    real_sample = t5_sampling.sample

    def spy(config, params, input_ids, input_mask, *args, **kwargs):
        seen.append((input_ids, input_mask))
        return real_sample(config, params, input_ids, input_mask, *args, **kwargs)

    monkeypatch.setattr(t5_sampling, "sample", spy)
    generation.generate_samples(config, params, tokenizer, [long_prompt],
                                SamplingParams(greedy=True, max_new_tokens=2),
                                max_source_length=48)
    (ids, mask), = seen
    kept = ids[0][: int(mask[0].sum())].tolist()
    assert len(kept) <= 48
    text = tokenizer.decode(kept, skip_special_tokens=True)
    assert text.startswith("\nQUESTION:\n") and text.endswith("Use Standard Input format\nANSWER:\n")


# ------------------------------------------------------------------------ --dataset (problems)
@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    """A synthetic TRAIN split written by `synthetic.save_problems` (what RL samples come from)."""
    from coderl_jax.data import synthetic

    problems = synthetic.generate_problems("train", 3)
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    synthetic.save_problems(problems, path)
    return problems, path


def test_default_sampling_is_the_benchmark_table():
    from coderl_jax import generation

    for dataset, temperature in generation.DEFAULT_TEMPERATURE.items():
        s = generation.resolve_sampling(dataset, num_samples=3)
        assert (s.temperature, s.top_p, s.num_samples) == (
            temperature, generation.DEFAULT_TOP_P, 3)
    assert generation.DEFAULT_TEMPERATURE["apps"] == 0.6  # the paper's
    assert generation.DEFAULT_TEMPERATURE["mbpp"] == 1.2  # the paper's
    s = generation.resolve_sampling("mbpp", temperature=0.3, top_p=0.5)
    assert (s.temperature, s.top_p) == (0.3, 0.5)
    s = generation.resolve_sampling(None)  # a prompts file: plain sampling
    assert (s.temperature, s.top_p) == (1.0, 1.0)
    with pytest.raises(ValueError, match="no default temperature for dataset 'nope'"):
        generation.resolve_sampling("nope")


def test_humaneval_samples_are_completions_the_others_code():
    from coderl_jax import generation
    from coderl_jax.data import loaders, synthetic

    humaneval = loaders.load_problems("humaneval")[0]
    assert generation.sample_record(humaneval, "    return 1\n") == {
        "task_id": humaneval.task_id, "completion": "    return 1\n"}
    problem = synthetic.generate_problems("test", 1)[0]
    assert generation.sample_record(problem, "print(1)") == {
        "task_id": problem.task_id, "code": "print(1)"}


def test_generate_then_execute_on_a_train_split(models, train_split, tmp_path, monkeypatch):
    """`coderl generate --dataset synthetic --data train.jsonl` then `coderl execute` on the
    same file: the workflow that makes RL sample files (CodeRL never shipped its script)."""
    from coderl_jax import generation
    from coderl_jax.data import jsonl

    _, _, ours = models
    problems, data = train_split
    seen = []
    real = generation.generate_problems_file

    def spy(model, dataset, data, out_path, sampling, **kwargs):
        seen.append(sampling)
        return real(model, dataset, data, out_path, sampling, **kwargs)

    monkeypatch.setattr(generation, "generate_problems_file", spy)
    samples = tmp_path / "samples.jsonl"
    assert cli.main(["generate", "--model", str(ours), "--dataset", "synthetic", "--data",
                     str(data), "--num-samples", "2", "--out", str(samples),
                     "--max-new-tokens", str(MAX_NEW), "--max-source-length", "96",
                     "--no-progress"]) == 0
    (sampling,) = seen  # no --temperature / --top-p: the benchmark's defaults
    assert (sampling.temperature, sampling.top_p) == (
        generation.DEFAULT_TEMPERATURE["synthetic"], generation.DEFAULT_TOP_P)
    rows = read_samples(samples)
    assert [r["task_id"] for r in rows] == [p.task_id for p in problems for _ in range(2)]
    assert all(set(r) == {"task_id", "code"} for r in rows)

    results = tmp_path / "results.jsonl"
    assert cli.main(["execute", "--dataset", "synthetic", "--data", str(data), "--samples",
                     str(samples), "--out", str(results), "--workers", "2",
                     "--no-progress"]) == 0
    judged = jsonl.read_results(results)
    assert [(r["task_id"], r["sample_index"]) for r in judged] == [
        (r["task_id"], i) for i, r in enumerate(rows)]


def test_prompts_and_dataset_are_exclusive_and_one_is_required(models, prompts_file, tmp_path,
                                                               capsys):
    _, hf_dir, _ = models
    out = str(tmp_path / "o.jsonl")
    with pytest.raises(SystemExit) as exc:
        cli.main(["generate", "--model", str(hf_dir), "--prompts", str(prompts_file),
                  "--dataset", "synthetic", "--out", out])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["generate", "--model", str(hf_dir), "--out", out])
    assert exc.value.code == 2
    assert "one of the arguments --dataset --prompts is required" in capsys.readouterr().err
    assert run(hf_dir, prompts_file, out, "--data", "x.jsonl") == 2
    assert "--data goes with --dataset" in capsys.readouterr().err


def test_dataset_without_its_data_is_a_clear_error(models, tmp_path, capsys):
    _, hf_dir, _ = models
    assert cli.main(["generate", "--model", str(hf_dir), "--dataset", "mbpp", "--out",
                     str(tmp_path / "o.jsonl"), "--no-progress"]) == 2
    assert "needs a path" in capsys.readouterr().err
