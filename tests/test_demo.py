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
    from coderl_jax.demo.report import REPORT_KEYS

    assert set(REPORT_KEYS) == {"ce", "ce_plus", "coderl", "coderl_cs", "critic_accuracy",
                                "binary_critic_accuracy", "critic_majority_baseline",
                                "binary_critic_majority_baseline", "seconds", "stages"}
    for key in REPORT_KEYS:
        assert key in report, key
    assert 0.5 <= report["binary_critic_majority_baseline"] <= 1.0
    assert set(report["coderl"]["per_problem"]) == {str(p["task_id"]) for p in map(
        json.loads, (work / "data" / "test.jsonl").read_text().splitlines())}
    assert 0.0 <= report["critic_accuracy"] <= 1.0
    hidden = read_results(work / "eval" / "coderl" / "results_hidden.jsonl")
    assert [r["sample_index"] for r in hidden] == list(range(96))
    text = (work / "report.md").read_text()
    assert "CodeRL + critic sampling" in text and "majority-class baseline" in text


def _system(pass1: float) -> dict:
    return {"pass@1": pass1, "pass@4": pass1 + 10, "n@k": {"1@4": pass1, "4@4": pass1 + 5},
            "by_difficulty": {"introductory": {"pass@1": pass1, "num_problems": 3}},
            "outcomes": {"PassedTest": 2, "FailedTest": 1},
            "error_types": {"RuntimeError": {"nameerror": 1}}}


def test_render_report_is_a_pure_function_of_the_result():
    """The Markdown report without running anything: every section, in order."""
    from coderl_jax.demo import SYSTEM_NAMES, SYSTEMS, DemoConfig, render_report

    cfg = DemoConfig.quick(ablation=True)
    result = {key: _system(10.0 * i) for i, key in enumerate(SYSTEMS)}
    result.update(critic_accuracy=0.5, binary_critic_accuracy=0.75, seconds=12.3,
                  critic_majority_baseline=0.4, binary_critic_majority_baseline=0.8,
                  binary_critic_accuracy_detail={
                      "majority_class": "FailedTest", "balanced_accuracy": 0.6,
                      "recall": {"FailedTest": 0.9, "PassedTest": 0.3}},
                  critic_sampling={"problems": 24, "refine": 20},
                  critic_sampling_by_path={"refine": {"problems": 20, "coderl": 40.0,
                                                      "coderl_cs": 45.0}},
                  ablation={"coderl": {"pass@1": 1.0, "pass@4": 2.0,
                                       "last_sample_pass_rate": 0.25}},
                  stages={"problems": 0.5})
    text = render_report(result, cfg)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# coderl demo", "## pass@k and n@k on the test split (%)",
        "## pass@1 by difficulty (%)", "## Critics (held-out problems of the train split)",
        "## Outcomes of the test samples (paper Fig. 8)", "## Error subtypes (paper Fig. 10)",
        "## Critic sampling paths (test problems)",
        "## Return estimators (same budget and seed)", "## Stages (s)"]
    assert f"| {SYSTEM_NAMES['coderl']} | 20.0 | 30.0 | 20.0 | 25.0 |" in text
    assert f"| {SYSTEM_NAMES['ce']} | 0 | 0 | 1 | 2 | 0 |" in text
    assert "| refine | 20 | 40.0 | 45.0 |" in text and "| coderl | 1.0 | 2.0 | 0.25 |" in text
    assert ("| binary | 0.750 | 0.800 (FailedTest) | 0.600 | FailedTest 0.90, PassedTest 0.30 |"
            in text and "| 4-class | 0.500 | 0.400 (-) |" in text)
    assert "| problems | 0.5 |" in text
    del result["ablation"], result["critic_sampling"]
    assert "Return estimators" not in render_report(result, cfg)


def test_report_json_needs_every_key(tmp_path):
    from coderl_jax.demo import report

    result = {k: 1.0 for k in report.REPORT_KEYS}
    assert report.write_json(result, tmp_path).is_file()
    del result["critic_majority_baseline"]
    import pytest

    with pytest.raises(ValueError, match="critic_majority_baseline"):
        report.write_json(result, tmp_path)


def test_critic_sampling_ablation_table():
    from coderl_jax.demo import DemoConfig, render_report
    from coderl_jax.demo.config import SYSTEMS

    cfg = DemoConfig.quick(ablation=True)
    result = {key: _system(10.0) for key in SYSTEMS}
    result.update(critic_accuracy=0.5, binary_critic_accuracy=0.75, seconds=1.0,
                  stages={}, ablation_critic_sampling={
                      "no CS": {"pass@1": 10.0, "pass@4": 20.0},
                      "refine only": {"pass@1": 12.0, "pass@4": 21.0, "cut_at_0_share": 0.5,
                                      "mean_cut": 3.25}})
    text = render_report(result, cfg)
    assert "## Critic sampling parts (paper Table 4)" in text
    assert "| refine only | 12.0 | 21.0 | 0.50 | 3.2 |" in text
    assert "| no CS | 10.0 | 20.0 | nan | nan |" in text
    result["ablation_objective"] = {"L_ce + L_rl": {"pass@1": 10.0, "pass@4": 20.0},
                                    "L_rl only": {"pass@1": 5.0, "pass@4": 9.0}}
    text = render_report(result, cfg)
    assert "## RL objectives (paper Table 3)" in text and "| L_rl only | 5.0 | 9.0 |" in text


def test_demo_set_overrides_are_typed_and_checked():
    import pytest

    from coderl_jax.demo import DemoConfig

    o = DemoConfig.overrides(["rl_steps=80", "warm_stop_metric=heldout_nll",
                              "critic_references=False", "learning_rate=1e-3"])
    assert o == {"rl_steps": 80, "warm_stop_metric": "heldout_nll",
                 "critic_references": False, "learning_rate": 1e-3}
    assert DemoConfig.quick(**o).rl_steps == 80
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        DemoConfig.overrides(["no_such_field=1"])


def test_validation_split_is_drawn_like_train_and_disjoint_from_test(tmp_path):
    import pytest

    from coderl_jax.data import synthetic
    from coderl_jax.demo import DemoConfig
    from coderl_jax.demo.pipeline import DemoRun, make_problems

    cfg = DemoConfig.quick(workdir=str(tmp_path), num_train_problems=30, num_test_problems=9,
                           num_val_problems=6, eval_split="validation")
    run = DemoRun(cfg, lambda _: None, tmp_path)
    make_problems(run)
    # The train problems are those of a run without validation (a prefix-stable draw).
    plain = synthetic.generate_problems("train", 30, cfg.seed)
    assert [p.task_id for p in run.train] == [p.task_id for p in plain]
    assert [p.task_id for p in run.val] == [f"synthetic/train/{i}" for i in range(30, 36)]
    assert run.test == run.val and run.test_path == tmp_path / "data" / "val.jsonl"
    assert (tmp_path / "data" / "test.jsonl").is_file()
    test_ids = {p.task_id for p in synthetic.generate_problems("test", 9, cfg.seed)}
    assert not test_ids & {p.task_id for p in run.val}
    with pytest.raises(ValueError, match="num_val_problems"):
        make_problems(DemoRun(DemoConfig.quick(eval_split="validation"), print, tmp_path))
