"""The model a stage starts from and the model dir it ends with.

A stage starts from scratch (a model config of either family and a tokenizer dir), from one
of our model dirs, or from a Hugging Face dir / hub id (`Salesforce/codet5-large-ntp-py`,
`gpt2`): `load_init`. It ends
by writing `workdir/model` (`save_final`), which `coderl generate`, the next stage or the RL
stage loads. Stages take a `loader(init_model, tokenizer) -> InitModel` (default: this
`load_init` with no scratch config); the mains pass one with the gin-bound options.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax

from coderl_jax import checkpoints
from coderl_jax.training.loop import sync_processes

MODEL_SUBDIR = "model"
Loader = Callable[[Any, Any], "InitModel"]


@dataclasses.dataclass
class InitModel:
    """The starting point of a stage: config, params (None = random init), tokenizer."""

    config: Any
    params: Any
    tokenizer: Any
    source: str


def load_init(init_model: str | None, tokenizer: str | None, *,
              scratch_config: Callable[[], Any] | None = None, dtype: str | None = None,
              dropout_rate: float | None = None) -> InitModel:
    """Our model dir / HF dir / hub id (`init_model`, through `loading.load_model`;
    T5 or decoder-only), or scratch: `scratch_config()` (a T5Config or DecoderConfig; the
    mains pass `configurables.scratch_config`, the gin-bound `family_config` or
    `model_config`) with the tokenizer dir `tokenizer` (required then).

    A loaded model keeps its own shape (config bindings describe a model built from
    scratch); how it computes is set here: `dtype` ("bfloat16": mixed precision, float32
    master weights) and `dropout_rate` (the mains bind `load_init.dtype = "bfloat16"`).
    """
    from coderl_jax.data.tokenizer import load_tokenizer
    from coderl_jax.loading import load_model

    if init_model:
        model = load_model(init_model, tokenizer=tokenizer or None, dtype=dtype,
                           dropout_rate=dropout_rate)
        return InitModel(model.config, model.params, model.tokenizer, str(init_model))
    if not tokenizer:
        raise ValueError("training from scratch needs a tokenizer dir (tokenizer=...); "
                         "or start from a model (init_model=...)")
    if scratch_config is None:
        raise ValueError("training from scratch needs the model's shape (a model config: "
                         "bind model_config.config or family_config.config, e.g. --gin_file "
                         "experiments/demo_cpu.gin); or start from a model (init_model=...)")
    config, params = scratch_config(), None
    tok, source = load_tokenizer(tokenizer), "scratch"
    overrides = {k: v for k, v in (("dtype", dtype), ("dropout_rate", dropout_rate))
                 if v is not None}
    if overrides:
        config = config.replace(**overrides)
    if len(tok) > config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tok)} tokens but the model's vocab_size is "
                         f"{config.vocab_size}")
    return InitModel(config, params, tok, source)


def save_final(workdir: str | pathlib.Path, init: InitModel, state, *,
               critic_classes: Sequence[str] | None = None,
               metadata: dict | None = None) -> pathlib.Path:
    """Write `workdir/model` (config, tokenizer, final params), replacing the one a previous
    run of this workdir wrote (a rerun of a finished run writes it again); every process
    takes part in the (collective) orbax write of the sharded params."""
    import shutil

    out = pathlib.Path(workdir) / MODEL_SUBDIR
    if jax.process_index() == 0 and out.exists():
        shutil.rmtree(out)
    sync_processes("coderl_save_final")
    # The tokenizer from process 0 only: `save_tokenizer` reads back a file it wrote, which
    # another process rewriting it at the same time would truncate under it. (The small
    # config/critic JSON files are written whole by every process, the same bytes.)
    tokenizer = init.tokenizer if jax.process_index() == 0 else None
    return checkpoints.save_model_dir(out, init.config, state.params, tokenizer=tokenizer,
                                      step=int(jax.device_get(state.step)),
                                      critic_classes=critic_classes, metadata=metadata)
