"""Batched, jitted forward passes of frozen models over (prompt, program) token pairs.

    scorer = Scorer.load("critic_dir")                  # or Scorer(config, params, classes)
    probs = scorer.critic_probs(prompt_ids, program_ids)   # list of [T_i, C] float32
    logp = Scorer.load("actor_dir").log_probs(prompt_ids, program_ids)   # list of [T_i]

One place for what RL rollouts (critic token values q(w_t), the reference policy's
log-probs for the KL term) and critic sampling (the binary critic's P(Pass | w_1..t)) need.
Rows are padded into fixed buckets (batch `batch_size`, lengths rounded up to powers of two)
so a run compiles a handful of programs at most; the compiled programs are the one cache of
`training/forward.py`, shared with held-out evaluation. Token ids are framed as in training: the
prompt ids as the encoder input (`<s> ... </s>`), the program ids ending with EOS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from coderl_jax.decoding import bucket
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import forward


@dataclasses.dataclass
class Scorer:
    """A frozen actor (classes None) or critic (classes = its class names)."""

    config: Any
    params: Any
    classes: tuple[str, ...] | None = None
    batch_size: int = 16

    @classmethod
    def load(cls, model_dir: str, batch_size: int = 16) -> "Scorer":
        """Our model dir (actor or critic), a Hugging Face dir or a hub id (an actor)."""
        from coderl_jax.loading import load_model

        model = load_model(model_dir, with_tokenizer=False)
        return cls(model.config, model.params, model.critic_classes, batch_size)

    def _batches(self, prompt_ids: Sequence[Sequence[int]],
                 program_ids: Sequence[Sequence[int]], temperature: float = 1.0):
        if len(prompt_ids) != len(program_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(program_ids)} programs")
        for start in range(0, len(prompt_ids), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(prompt_ids)))
            examples = []
            for i in rows:
                targets = list(program_ids[i]) or [self.config.eos_token_id]
                examples.append({"inputs": prompt_ids[i], "targets": targets,
                                 "temperature": temperature})
            enc = bucket(max(len(e["inputs"]) for e in examples), 16)
            dec = bucket(max(len(e["targets"]) for e in examples), 16)
            yield rows, batch_lib.build_batch(examples, self.batch_size, enc, dec)

    def critic_probs(self, prompt_ids, program_ids) -> list[np.ndarray]:
        """Per-token class probabilities [T_i, C] (T_i = len(program_ids[i])): row t is
        P(outcome | w_1..t)."""
        if self.classes is None:
            raise ValueError("critic_probs needs a critic (a model dir with critic.json)")
        return self.critic_outputs(prompt_ids, program_ids)[0]

    def critic_outputs(self, prompt_ids, program_ids
                       ) -> tuple[list[np.ndarray], np.ndarray]:
        """(per-token class probabilities [T_i, C] as `critic_probs`, the sequence-level
        prediction softmax(max-pooled logits) [N, C])."""
        if self.classes is None:
            raise ValueError("critic_outputs needs a critic (a model dir with critic.json)")
        fn = forward.critic_fn(self.config, len(self.classes))
        tokens, pooled = [], []
        for rows, b in self._batches(prompt_ids, program_ids):
            probs, logits = fn(self.params, batch_lib.critic_inputs(b))
            probs, seq = np.asarray(probs), np.asarray(jax.nn.softmax(logits))
            tokens.extend(probs[j, :len(program_ids[i])] for j, i in enumerate(rows))
            pooled.extend(seq[j] for j, _ in enumerate(rows))
        return tokens, np.asarray(pooled).reshape(len(tokens), len(self.classes))

    def log_probs(self, prompt_ids, program_ids, temperature: float = 1.0) -> list[np.ndarray]:
        """log p of every program token under the actor at `temperature` (log softmax of
        logits / temperature, as the RL loss scores samples): [T_i] float32 each."""
        if self.classes is not None:
            raise ValueError("log_probs needs an actor, not a critic")
        fn = forward.log_prob_fn(self.config)
        out = []
        for rows, b in self._batches(prompt_ids, program_ids, temperature):
            logp = np.asarray(fn(self.params, b))
            out.extend(logp[j, :len(program_ids[i])] for j, i in enumerate(rows))
        return out
