"""The sizes of a demo run (`DemoConfig`) and the names of the systems it compares."""

from __future__ import annotations

import dataclasses

SYSTEMS = ("ce", "ce_plus", "coderl", "coderl_cs")
SYSTEM_NAMES = {"ce": "CE (warm start)", "ce_plus": "CE+ (more L_ce)", "coderl": "CodeRL",
                "coderl_cs": "CodeRL + critic sampling"}
ABLATION_ESTIMATORS = ("baseline", "critic", "decay", "coderl", "group")
# The model family of the demo's actor, critic and repair model -> its gin model file (read
# after experiments/demo_cpu.gin, whose T5 it replaces).
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
    critic_samples: int = 4
    critic_steps: int = 120
    repair_steps: int = 80
    rl_steps: int = 40
    rl_problems_per_step: int = 8
    rl_samples: int = 4
    rl_learning_rate: float = 2e-4
    eval_samples: int = 10
    temperature: float = 0.6
    top_p: float = 0.95
    max_source_length: int = 256
    max_new_tokens: int = 64
    repair_top_m: int = 2

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {self.family!r}")

    @property
    def model_gin_file(self) -> str:
        """The gin model file of the demo's models (`FAMILIES`)."""
        return FAMILIES[self.family]

    @property
    def config_class(self) -> str:
        """The gin name of its config class (for the vocabulary override)."""
        return "T5Config" if self.family == "t5" else "DecoderConfig"

    @classmethod
    def quick(cls, **overrides) -> "DemoConfig":
        sizes = dict(num_train_problems=120, num_test_problems=24, vocab_size=1024,
                     tokenizer_corpus_bytes=300_000, pretrain_corpus_bytes=100_000,
                     pretrain_steps=4, warm_steps=40, batch_size=16, critic_problems=40,
                     critic_samples=2, critic_steps=8, repair_steps=6, rl_steps=4,
                     rl_problems_per_step=4, rl_samples=2, eval_samples=4)
        return cls(**{**sizes, **overrides})

    def sampling(self, num_samples: int):
        """The demo's sampling for the synthetic benchmark: `num_samples` programs per
        problem at the demo's temperature / top-p and length budget."""
        from coderl_jax.generation import resolve_sampling

        return resolve_sampling("synthetic", num_samples=num_samples,
                                max_new_tokens=self.max_new_tokens,
                                temperature=self.temperature, top_p=self.top_p)
