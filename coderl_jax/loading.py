"""One model loader: a name on the command line -> config, params, tokenizer.

    model = load_model("runs/rl/model")                   # our model dir (actor or critic)
    model = load_model("/path/to/codet5-small")           # a Hugging Face dir
    model = load_model("Salesforce/codet5-large-ntp-py")  # a hub id (or a HUB_IDS short name)

Our model dir (config.json + checkpoints/, `checkpoints.save_model_dir`) is recognised first,
a critic's by its critic.json; anything else goes to the Hugging Face loader, which resolves a
local dir or downloads a hub snapshot once (`hub.resolve_model_dir`) and reads weights and
tokenizer from that one folder. Generation, critic sampling, the training stages' starting
point and the frozen scorers all load through here.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

from coderl_jax import checkpoints


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A loaded model.

    config: its `T5Config` or `DecoderConfig` (with any dtype / dropout_rate override applied).
    params: the params pytree on this process's first device (a critic's is
      {"backbone", "head"}).
    tokenizer: a transformers tokenizer, or None when loaded with `with_tokenizer=False`.
    source: what was loaded (the spec as given).
    critic_classes: a critic's class names in index order; None for an actor.
    """

    config: Any
    params: Any
    tokenizer: Any = None
    source: str = ""
    critic_classes: tuple[str, ...] | None = None


def load_model(
    spec: str | os.PathLike,
    *,
    tokenizer: Any = None,
    dtype: str | None = None,
    dropout_rate: float | None = None,
    step: int | None = None,
    with_tokenizer: bool = True,
) -> LoadedModel:
    """Load our model dir, a Hugging Face dir or a hub id (module docstring).

    Args:
      spec: our model dir, a Hugging Face model dir, a hub id "owner/name" or a short name of
        `hub.HUB_IDS`.
      tokenizer: the tokenizer to use instead of the model's own: a dir / hub id, or an
        already loaded tokenizer object. Default: the one saved with the model.
      dtype: activation dtype of the returned config ("bfloat16": mixed precision; params
        stay float32). Default: the model's.
      dropout_rate: dropout of the returned config (for training from this model).
      step: checkpoint step of our model dir (default: latest); an error for a HF model.
      with_tokenizer: False skips the tokenizer (frozen scorers read token ids only).

    Raises:
      ValueError: `step` for a Hugging Face model, or a tokenizer larger than the model's
        vocabulary.
      FileNotFoundError: nothing loadable at `spec`.
    """
    if checkpoints.is_model_dir(spec):
        config, params = checkpoints.load_model_dir(spec, step=step)
        classes = checkpoints.critic_classes(spec)
        model_dir = pathlib.Path(spec)
    else:
        if step is not None:
            raise ValueError(f"--step applies to our checkpoint dirs only; {spec} is not one")
        config, params, model_dir = _load_hf(spec)
        classes = None
    overrides = {k: v for k, v in (("dtype", dtype), ("dropout_rate", dropout_rate))
                 if v is not None}
    if overrides:
        config = config.replace(**overrides)
    tok = _tokenizer(tokenizer, model_dir) if with_tokenizer else None
    if tok is not None and len(tok) > config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tok)} tokens but the model's vocab_size is "
                         f"{config.vocab_size}")
    return LoadedModel(config, params, tok, str(spec),
                       None if classes is None else tuple(classes))


def _load_hf(spec: str | os.PathLike) -> tuple[Any, Any, pathlib.Path]:
    """(config, params, local dir) of a Hugging Face dir or hub id, resolved once so weights
    and tokenizer come from one snapshot."""
    from coderl_jax.hub import resolve_model_dir
    from coderl_jax.models.family import load_family

    model_dir = resolve_model_dir(spec)
    family, params = load_family(model_dir)
    return family.config, params, model_dir


def _tokenizer(tokenizer: Any, model_dir: pathlib.Path) -> Any:
    """`tokenizer` loaded if it names one (a dir or hub id), as is if it is one, else the
    tokenizer saved in `model_dir`."""
    from coderl_jax.data.tokenizer import load_tokenizer

    if tokenizer is None:
        return load_tokenizer(model_dir)
    if isinstance(tokenizer, (str, os.PathLike)):
        return load_tokenizer(tokenizer)
    return tokenizer
