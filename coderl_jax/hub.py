"""Where a model named on the command line lives: a local directory, a short name, or a hub id.

    resolve_model_dir("codet5-large-ntp-py")            # -> the downloaded snapshot's folder
    resolve_model_dir("/path/to/model")                  # -> the folder itself

Both the weights (`models.hf`) and the tokenizer (`data.tokenizer`) are read from the folder
this returns, so the short names and the download rules are stated once, here. Light: only
the standard library at import time (huggingface_hub is imported when a download is needed).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable

# Short names accepted wherever a model or tokenizer is named (CodeT5 releases).
HUB_IDS: dict[str, str] = {
    "codet5-small": "Salesforce/codet5-small",
    "codet5-base": "Salesforce/codet5-base",
    "codet5-large": "Salesforce/codet5-large",
    "codet5-large-ntp-py": "Salesforce/codet5-large-ntp-py",
    # Decoder-only (models/decoder/): the paper's GPT actors / critic and a current code LM.
    "gpt2": "openai-community/gpt2",
    "gpt-neo-125m": "EleutherAI/gpt-neo-125M",
    "qwen2.5-coder-0.5b": "Qwen/Qwen2.5-Coder-0.5B",
}

# Weight files looked for in a model directory, in order of preference (safetensors first).
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "model.safetensors.index.json",
                                 "pytorch_model.bin", "pytorch_model.bin.index.json")
SAFETENSORS_FILES: tuple[str, ...] = WEIGHT_FILES[:2]


def resolve_model_dir(path_or_hub_id: str | os.PathLike, *,
                      allow_patterns: Iterable[str] | None = None) -> pathlib.Path:
    """A local directory for `path_or_hub_id`: an existing directory, a short name from
    HUB_IDS, or a hub id "owner/name" (downloaded with huggingface_hub.snapshot_download).

    Args:
      allow_patterns: files to download (default: configs, tokenizer files and safetensors
        weights; a repo without safetensors gets its `*.bin` weights instead).
    Raises:
      FileNotFoundError: neither an existing directory nor something that names a hub repo.
    """
    path = pathlib.Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    name = str(path_or_hub_id)
    repo_id = HUB_IDS.get(name, name)
    if path.exists() or repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{name!r} is not a model directory, a hub id 'owner/name', or one of "
            f"{sorted(HUB_IDS)}")
    from huggingface_hub import snapshot_download

    patterns = list(allow_patterns) if allow_patterns is not None else [
        "*.json", "*.txt", "*.model", "model.safetensors*"]
    local = pathlib.Path(snapshot_download(repo_id, allow_patterns=patterns))
    if allow_patterns is None and not any((local / f).exists() for f in SAFETENSORS_FILES):
        # The original CodeT5 uploads only have pytorch_model.bin.
        local = pathlib.Path(snapshot_download(repo_id, allow_patterns=patterns + ["*.bin"]))
    return local
