"""`coderl demo --quick` end to end: every stage runs, leaves its files, and reports."""

import json

from coderl_jax.cli import main
from coderl_jax.data.jsonl import read_results


def test_demo_quick_runs_the_whole_pipeline(tmp_path):
    work = tmp_path / "demo"
    rc = main(["demo", "--quick", "--workdir", str(work), "--workers", "2"])
    assert rc == 0
    for name in ("data/train.jsonl", "data/test.jsonl", "tokenizer/tokenizer.json",
                 "pretrain/model/config.json", "warm/model/config.json",
                 "train_samples.jsonl", "train_results.jsonl", "critic/model/critic.json",
                 "critic_binary/model/critic.json", "repair/model/config.json",
                 "rl/model/config.json", "rl/metrics.jsonl", "ce_plus/model/config.json",
                 "eval/coderl_cs/samples.jsonl", "report.md", "plots/pass_at_k.png",
                 "plots/outcomes.png"):
        assert (work / name).is_file(), name
    report = json.loads((work / "report.json").read_text())
    for system in ("ce", "ce_plus", "coderl", "coderl_cs"):
        r = report[system]
        assert r["num_problems"] == 24 and r["num_samples"] == 24 * 4, system
        assert 0.0 <= r["pass@1"] <= r["pass@4"] <= 100.0
        assert set(r["n@k"]) == {"1@4", "4@4"}
    for key in ("critic_accuracy", "binary_critic_accuracy", "seconds", "stages"):
        assert key in report
    assert 0.0 <= report["critic_accuracy"] <= 1.0
    hidden = read_results(work / "eval" / "coderl" / "results_hidden.jsonl")
    assert [r["sample_index"] for r in hidden] == list(range(96))
    text = (work / "report.md").read_text()
    assert "CodeRL + critic sampling" in text and "4-class critic accuracy" in text
