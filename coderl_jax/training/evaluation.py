"""Held-out evaluation of the stages: teacher-forced loss, greedy pass@1, critic accuracy.

All forward passes go through the one compiled-forward cache (`forward.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from coderl_jax.training import batch as batch_lib
from coderl_jax.training import forward


def fixed_batches(examples: Sequence[dict], batch_size: int, encoder_length: int,
                  decoder_length: int, build: Callable = batch_lib.ce_batch
                  ) -> list[batch_lib.Batch]:
    """Every example once, in order, in batches of `batch_size` built by `build`
    (`batch.ce_batch` or `batch.critic_batch`)."""
    return [build(examples[i:i + batch_size], batch_size, encoder_length, decoder_length)
            for i in range(0, len(examples), batch_size)]


def heldout_nll(config, params, batches: Sequence[batch_lib.Batch]) -> float:
    """Mean -log p per real target token of held-out CE batches (teacher forcing)."""
    fn = forward.log_prob_fn(config)
    total, tokens = 0.0, 0.0
    for b in batches:
        logp = np.asarray(fn(params, b))
        total += float(-(logp * b.decoder_mask).sum())
        tokens += float(b.decoder_mask.sum())
    return total / max(tokens, 1.0)


def critic_report(config, params, batches: Sequence[batch_lib.Batch], classes) -> dict:
    """Accuracy, per-class recall and the confusion matrix of `batches` (held-out rows)."""
    from coderl_jax.training import losses

    fn = forward.critic_fn(config, len(classes))
    confusion = np.zeros((len(classes), len(classes)))
    for b in batches:
        _, pooled = fn(params, b)
        confusion += np.asarray(losses.critic_confusion(pooled, b.labels, b.label_weights))
    return confusion_summary(confusion, classes)


def confusion_summary(confusion, classes) -> dict:
    """From a confusion matrix [C, C] (rows: true class, columns: predicted): accuracy,
    per-class recall (None for an absent class), balanced accuracy (the mean recall of the
    present classes), the majority-class baseline (the accuracy of always answering the
    commonest true class) and that class, the confusion and the row count."""
    confusion = np.asarray(confusion, np.float64)
    total = confusion.sum()
    support = confusion.sum(axis=1)
    recall = {c: float(confusion[i, i] / support[i]) if support[i] else None
              for i, c in enumerate(classes)}
    present = [r for r in recall.values() if r is not None]
    return {"accuracy": float(np.trace(confusion) / total) if total else float("nan"),
            "majority_baseline": float(support.max() / total) if total else float("nan"),
            "majority_class": classes[int(support.argmax())] if total else None,
            "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
            "recall": recall, "confusion": confusion.astype(int).tolist(),
            "classes": list(classes), "rows": int(total)}


def greedy_pass_rate(config, params, tokenizer, problems: Sequence[Any], executor, *,
                     max_source_length: int, max_new_tokens: int, batch_size: int = 8) -> float:
    """Share of `problems` whose greedy program passes the hidden tests (pass@1 greedy)."""
    from coderl_jax.decoding import SamplingParams
    from coderl_jax.generation import generate_for_problems

    if not problems:
        return float("nan")
    programs = generate_for_problems(config, params, tokenizer, problems,
                                     SamplingParams(greedy=True, max_new_tokens=max_new_tokens),
                                     batch_size=batch_size, max_source_length=max_source_length)
    futures = [executor.submit(p, progs[0]) for p, progs in zip(problems, programs)]
    return float(np.mean([f.result().passed for f in futures]))
