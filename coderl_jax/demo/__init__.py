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

The package: `config` (DemoConfig, the systems compared), `pipeline` (`run_demo`: its stages
as named functions), `training` (the gin-bound calls into the training stages, one function
each), `evaluation` (sample, judge and score a system; critic sampling), `report` (report.md,
report.json, plots).
"""

from coderl_jax.demo.config import ABLATION_ESTIMATORS, SYSTEM_NAMES, SYSTEMS, DemoConfig
from coderl_jax.demo.evaluation import evaluate_system
from coderl_jax.demo.pipeline import run_demo
from coderl_jax.demo.report import render_report

__all__ = ["ABLATION_ESTIMATORS", "SYSTEMS", "SYSTEM_NAMES", "DemoConfig", "evaluate_system",
           "render_report", "run_demo"]
