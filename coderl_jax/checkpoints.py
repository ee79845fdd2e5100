"""Orbax checkpoints: save/restore named pytrees by step, and our self-contained model dirs.

A checkpoint directory holds one subdirectory per step (orbax layout). Each step stores any
number of named *items* (e.g. "params", "opt_state", "rng": each a pytree saved with
`StandardSave`) plus a small JSON "metadata" item (step, data position, ...). A training loop
saves its whole state as items and resumes from `latest_step()`; evaluation restores only the
"params" item of the same checkpoint.

A *model dir* written by us (`save_model_dir`) is::

    MODEL_DIR/config.json          config.to_json(path) (T5Config or DecoderConfig): our fields
    MODEL_DIR/tokenizer*.json ...  data.tokenizer.save_tokenizer(MODEL_DIR) (optional)
    MODEL_DIR/checkpoints/<step>/  orbax checkpoint with at least the "params" item

so `coderl generate --model MODEL_DIR` works on it like on a Hugging Face directory.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

CHECKPOINT_SUBDIR = "checkpoints"
CONFIG_FILE = "config.json"
# Present in a critic's model dir: {"num_classes": C, "classes": [...]}; absent for an actor.
CRITIC_FILE = "critic.json"
METADATA_ITEM = "metadata"
PARAMS_ITEM = "params"


_BARE_KEY = "_bare_items"
_VALUE = "value"


def _is_bare(tree: Any) -> bool:
    return not jax.tree_util.treedef_children(jax.tree.structure(tree))


class CheckpointNotFoundError(FileNotFoundError):
    """No (or no such) checkpoint; the message says where it looked."""


class CheckpointStore:
    """Steps of named pytrees under one directory (a thin layer over `ocp.CheckpointManager`).

    Args:
      directory: where step subdirectories live (created on first save unless read_only).
      max_to_keep: keep only the newest N steps (None: keep all).
      async_save: return from `save` before the write finishes (call `wait()` or `close()`).
      read_only: never create or delete anything (restoring a released model).
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        *,
        max_to_keep: int | None = None,
        async_save: bool = False,
        read_only: bool = False,
    ):
        self.directory = pathlib.Path(directory).absolute()
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            # read_only only stops creating the directory: orbax's own read_only mode logs
            # warnings on every call, and restoring never writes anyway.
            create=not read_only,
        )
        if read_only and not self.directory.is_dir():
            raise CheckpointNotFoundError(f"no checkpoint directory at {self.directory}")
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    # -- discovery ---------------------------------------------------------------------------
    def all_steps(self) -> list[int]:
        """Completed steps, ascending (in-progress/temporary saves are not listed)."""
        self._manager.reload()
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest completed step, or None when the directory holds no checkpoint."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def item_names(self, step: int) -> list[str]:
        """Names of the items saved at `step`."""
        self._check_step(step)
        # The step directory holds one subdirectory per item (plus orbax's metadata files).
        return sorted(p.name for p in (self.directory / str(step)).iterdir() if p.is_dir())

    # -- save / restore ----------------------------------------------------------------------
    def save(
        self, step: int, items: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Save pytrees `items` (e.g. {"params": ..., "opt_state": ...}) at `step`.

        `metadata` (JSON-serialisable: data position, config name, ...) is stored alongside as
        the "metadata" item; "step" is always recorded in it.
        """
        if not items:
            raise ValueError("nothing to save: `items` is empty")
        if METADATA_ITEM in items:
            raise ValueError(f"item name {METADATA_ITEM!r} is reserved for the metadata dict")
        # StandardSave wants a container; a bare array item (an rng key, a step counter) is
        # wrapped in {"value": x} on disk and unwrapped by `restore` (recorded in metadata).
        bare = sorted(name for name, tree in items.items() if _is_bare(tree))
        meta = {"step": int(step), **dict(metadata or {}), _BARE_KEY: bare}
        args = {
            name: ocp.args.StandardSave({_VALUE: tree} if name in bare else tree)
            for name, tree in items.items()
        }
        args[METADATA_ITEM] = ocp.args.JsonSave(meta)
        # force=True: the caller decides when to save; no interval policy hides a save.
        self._manager.save(int(step), args=ocp.args.Composite(**args), force=True)

    def wait(self) -> None:
        """Block until pending async saves are on disk."""
        self._manager.wait_until_finished()

    def restore(
        self,
        step: int | None = None,
        targets: Mapping[str, Any] | Iterable[str] = (PARAMS_ITEM,),
    ) -> dict[str, Any]:
        """Restore some items of a step (default: the latest).

        Args:
          step: the step to restore, None for the latest.
          targets: either item names (arrays come back with the shardings they were saved
            with, which needs the same devices), or {name: abstract pytree} where the abstract
            pytree holds `jax.ShapeDtypeStruct`s with `.sharding` set (see
            `partitioning.with_shardings`): arrays are restored straight into those shardings,
            on any mesh. A value of None restores that item as saved.

        Returns:
          {name: pytree} for the requested items plus "metadata" (the JSON dict).
        """
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointNotFoundError(
                    f"no checkpoint found in {self.directory} (looked for step subdirectories "
                    f"written by orbax; the directory {'exists' if self.directory.is_dir() else 'does not exist'})"
                )
        self._check_step(step)
        if not isinstance(targets, Mapping):
            targets = {name: None for name in targets}
        saved = set(self.item_names(step))
        missing = [name for name in targets if name not in saved]
        if missing:
            raise KeyError(
                f"checkpoint {self.directory / str(step)} has no item(s) {missing}; "
                f"it holds {sorted(saved)}"
            )
        meta = self._manager.restore(
            step, args=ocp.args.Composite(**{METADATA_ITEM: ocp.args.JsonRestore()})
        )[METADATA_ITEM]
        bare = set(meta.pop(_BARE_KEY, []))
        args = {}
        for name, target in targets.items():
            if target is not None and name in bare:
                target = {_VALUE: target}
            args[name] = ocp.args.StandardRestore(target)
        restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        out = {name: restored[name][_VALUE] if name in bare else restored[name] for name in targets}
        out[METADATA_ITEM] = meta
        return out

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "CheckpointStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_step(self, step: int) -> None:
        steps = self.all_steps()
        if step not in steps:
            raise CheckpointNotFoundError(
                f"no checkpoint for step {step} in {self.directory}; available steps: {steps or 'none'}"
            )


# -- model dirs ------------------------------------------------------------------------------
def is_model_dir(path: str | pathlib.Path) -> bool:
    """True for a model dir written by `save_model_dir` (config.json + checkpoints/)."""
    path = pathlib.Path(path)
    return (path / CONFIG_FILE).is_file() and (path / CHECKPOINT_SUBDIR).is_dir()


def save_model_dir(
    out_dir: str | pathlib.Path,
    config: Any,
    params: Any,
    *,
    tokenizer: Any = None,
    step: int = 0,
    metadata: Mapping[str, Any] | None = None,
    critic_classes: Iterable[str] | None = None,
) -> pathlib.Path:
    """Write a self-contained model dir: config.json, tokenizer files, orbax params at `step`.

    critic_classes: for a critic (T5 + error head), its class names in index order
    (`outcomes.OUTCOMES` or `BINARY_OUTCOMES`), written to critic.json.

    Args:
      config: a `T5Config` (written with its `to_json(path)`).
      params: the model params pytree (may be sharded; orbax writes each shard once).
      tokenizer: optional transformers tokenizer, saved with
        `coderl_jax.data.tokenizer.save_tokenizer` (readable by transformers 4 and 5).
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:  # small files once; the params below are written by all
        config.to_json(out_dir / CONFIG_FILE)
        if critic_classes is not None:
            classes = list(critic_classes)
            (out_dir / CRITIC_FILE).write_text(
                json.dumps({"num_classes": len(classes), "classes": classes}, indent=2) + "\n")
        if tokenizer is not None:
            from coderl_jax.data.tokenizer import save_tokenizer

            save_tokenizer(tokenizer, out_dir)
    with CheckpointStore(out_dir / CHECKPOINT_SUBDIR) as store:
        store.save(step, {PARAMS_ITEM: params}, metadata=metadata)
    return out_dir


def load_model_config(model_dir: str | pathlib.Path) -> Any:
    """The model config of a model dir (from its config.json): a `T5Config` or a
    `DecoderConfig` (`models.family.config_from_json` tells them apart)."""
    from coderl_jax.models.family import config_from_json

    path = pathlib.Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointNotFoundError(f"no {CONFIG_FILE} in model dir {pathlib.Path(model_dir)}")
    return config_from_json(path)


def critic_classes(model_dir: str | pathlib.Path) -> list[str] | None:
    """The class names of a critic's model dir, or None for an actor's."""
    path = pathlib.Path(model_dir) / CRITIC_FILE
    if not path.is_file():
        return None
    return list(json.loads(path.read_text())["classes"])


def load_model_dir(
    model_dir: str | pathlib.Path,
    *,
    step: int | None = None,
    shardings: Any = None,
) -> tuple[Any, Any]:
    """Load (config, params) from a model dir written by `save_model_dir` (or a training run
    whose checkpoints/ holds a "params" item). A critic's dir (critic.json) gives the critic
    params {"backbone", "head"}.

    Args:
      step: checkpoint step (default latest).
      shardings: pytree of `NamedSharding`s for the params (default: all on the first
        device). The checkpoint may have been written on another mesh.
    """
    from coderl_jax.models.family import family_for
    from coderl_jax.partitioning import with_shardings

    model_dir = pathlib.Path(model_dir)
    config = load_model_config(model_dir)
    family = family_for(config)
    classes = critic_classes(model_dir)
    if classes is None:
        abstract = jax.eval_shape(family.init, jax.random.key(0))
    else:
        abstract = jax.eval_shape(lambda rng: family.critic_init(len(classes), rng),
                                  jax.random.key(0))
    if shardings is None:
        # This process's own device: on a multi-host run jax.devices()[0] belongs to host 0.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        shardings = jax.tree.map(lambda _: device, abstract)
    target = with_shardings(abstract, shardings)
    with CheckpointStore(model_dir / CHECKPOINT_SUBDIR, read_only=True) as store:
        params = store.restore(step, {PARAMS_ITEM: target})[PARAMS_ITEM]
    return config, params
