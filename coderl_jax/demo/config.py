"""The sizes of a demo run (`DemoConfig`) and the names of the systems it compares."""

from __future__ import annotations

import dataclasses

SYSTEMS = ("ce", "ce_plus", "coderl", "coderl_cs")
SYSTEM_NAMES = {"ce": "CE (warm start)", "ce_plus": "CE+ (more L_ce)", "coderl": "CodeRL",
                "coderl_cs": "CodeRL + critic sampling"}
ABLATION_ESTIMATORS = ("baseline", "critic", "decay", "coderl", "group", "pass_at_k")
# The model family of the demo's actor, critic and repair model -> the gin model file with
# its shape (demo/training.py builds the same shape as a dataclass; tests check they agree).
FAMILIES = {"t5": "models/demo_cpu.gin", "gpt2": "models/demo_gpt2.gin"}


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run. The defaults take about 15 minutes on 2 CPU cores; `quick()`
    gives the ~3-minute smoke version CI runs."""

    workdir: str = "demo_workdir"
    seed: int = 0
    family: str = "t5"
    ablation: bool = False
    workers: int | None = None
    num_train_problems: int = 1200
    num_test_problems: int = 120
    vocab_size: int = 2048
    tokenizer_corpus_bytes: int = 2_000_000
    pretrain_corpus_bytes: int = 1_000_000
    pretrain_steps: int = 60
    warm_steps: int = 220
    batch_size: int = 32
    learning_rate: float = 2e-3
    critic_problems: int = 400
    critic_samples: int = 8  # K >= 8 judged samples per critic train problem
    critic_steps: int = 120
    repair_steps: int = 80
    rl_steps: int = 40
    rl_problems_per_step: int = 8
    rl_samples: int = 4
    rl_learning_rate: float = 2e-4
    eval_samples: int = 20  # pass@1/5/10/20
    temperature: float = 0.6
    top_p: float = 0.95
    max_source_length: int = 256
    max_new_tokens: int = 64
    repair_top_m: int = 2
    # One verdict policy for the critics' / repair model's labels and RL (outcomes.py).
    verdict_policy: str = "first_failure"
    # The critics' data: references in or out, class weighting ("none" / "balanced").
    critic_references: bool = True
    critic_class_weighting: str = "none"
    # RL batch options (RLConfig): CE rows per RL sample, L_rl normalisation.
    rl_ce_per_sample: int = 1
    rl_normalisation: str = "sequence"
    # The validation split: num_val_problems more problems drawn like train (the train
    # draw's continuation: disjoint from test, may repeat train compositions with other
    # inputs), data/val.jsonl. eval_split "validation" evaluates every system on it instead
    # of the test split (decide knobs there; the test split only at the end), and the warm
    # start's held-out evaluations use it.
    num_val_problems: int = 0
    eval_split: str = "test"
    # The warm start's stopping rule (training/stopping.py): off with warm_stop_metric "";
    # e.g. "heldout_greedy_pass@1" (needs warm_eval_problems > 0) or "heldout_nll", every
    # warm_eval_period steps, warm_steps the cap, with warm_schedule ("linear": decaying).
    warm_stop_metric: str = ""
    warm_patience: int = 3
    warm_eval_period: int = 0
    warm_eval_problems: int = 0
    warm_schedule: str = "constant"

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {self.family!r}")

    @classmethod
    def quick(cls, **overrides) -> "DemoConfig":
        sizes = dict(num_train_problems=120, num_test_problems=24, vocab_size=1024,
                     tokenizer_corpus_bytes=300_000, pretrain_corpus_bytes=100_000,
                     pretrain_steps=4, warm_steps=40, batch_size=16, critic_problems=40,
                     critic_samples=2, critic_steps=8, repair_steps=6, rl_steps=4,
                     rl_problems_per_step=4, rl_samples=2, eval_samples=4)
        return cls(**{**sizes, **overrides})

    @staticmethod
    def overrides(pairs) -> dict:
        """{"field": value} from "field=value" strings (`coderl demo --set`), each value
        read as a Python literal (a bare word is a string); unknown fields are errors."""
        import ast

        names = {f.name for f in dataclasses.fields(DemoConfig)}
        out = {}
        for pair in pairs:
            name, sep, text = pair.partition("=")
            if not sep or name not in names:
                raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of "
                                 f"{sorted(names)}")
            try:
                out[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                out[name] = text
        return out

    def sampling(self, num_samples: int):
        """The demo's sampling for the synthetic benchmark: `num_samples` programs per
        problem at the demo's temperature / top-p and length budget."""
        from coderl_jax.generation import resolve_sampling

        return resolve_sampling("synthetic", num_samples=num_samples,
                                max_new_tokens=self.max_new_tokens,
                                temperature=self.temperature, top_p=self.top_p)
