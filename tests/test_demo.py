"""`coderl demo` end to end on a very small setting: every stage runs and leaves its files."""

import json

from coderl_jax.cli import main
from coderl_jax.data.jsonl import read_results


def test_demo_runs_the_whole_pipeline(tmp_path):
    work = tmp_path / "demo"
    rc = main([
        "demo", "--workdir", str(work), "--num-train-problems", "12", "--num-test-problems",
        "6", "--vocab-size", "1024", "--tokenizer-corpus-bytes", "400000", "--num-samples",
        "2", "--max-new-tokens", "12", "--batch-size", "4", "--workers", "2",
    ])
    assert rc == 0
    for name in ("data/train.jsonl", "data/test.jsonl", "tokenizer/tokenizer.json",
                 "model/config.json", "prompts.jsonl", "samples.jsonl", "report.md",
                 "plots/pass_at_k.png", "plots/outcomes.png"):
        assert (work / name).is_file(), name
    samples = [json.loads(line) for line in (work / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12
    hidden = read_results(work / "results_hidden.jsonl")
    assert [r["sample_index"] for r in hidden] == list(range(12))
    report = json.loads((work / "report.json").read_text())
    assert report["model"]["num_samples"] == 12 and report["model"]["num_problems"] == 6
    # The references are correct by construction: the sandbox and the metrics must say so.
    assert report["reference"]["pass@1"] == 100.0
    assert report["reference"]["n@k"]["1@1"] == 100.0
