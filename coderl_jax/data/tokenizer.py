"""A byte-level BPE tokenizer with CodeT5's special-token layout, trained on our corpus.

CodeT5 (Salesforce/codet5-*) uses a RoBERTa-style byte-level BPE whose vocabulary begins
with five special tokens and ends with T5's 100 sentinels:

    id                       token
    0                        <pad>        (also T5's decoder start token)
    1                        <s>          (bos, cls)
    2                        </s>         (eos, sep)
    3                        <unk>
    4                        <mask>
    5 .. V-S-1               learned BPE tokens (the first 256 include every byte)
    V-S .. V-1               <extra_id_{S-1}> .. <extra_id_0>   (S = num_sentinels, 100)

with <extra_id_0> the HIGHEST id (V-1), as in T5 (for CodeT5's V = 32100: <extra_id_0> =
32099, <extra_id_99> = 32000). `sentinel_id(i, V)` states that rule once.

Encoding convention, decided to match CodeT5's RobertaTokenizer so prompts encode exactly
as the released checkpoints saw them in fine-tuning: `tokenizer(text)` gives
`<s> tokens </s>` (a pair: `<s> a </s></s> b </s>`); `add_special_tokens=False` gives the
bare tokens. The pretraining builders (`objectives.py`) take bare tokens and add their own
framing. No normalizer and no prefix space: decoding bare tokens returns the text exactly.

Saved in Hugging Face format (tokenizer.json, tokenizer_config.json,
special_tokens_map.json), so `transformers.AutoTokenizer.from_pretrained(dir)` loads it with
pad/bos/eos/unk/mask set.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Sequence

# CodeT5's leading special tokens, in id order (ids 0..4).
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>", "<mask>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID = range(len(SPECIAL_TOKENS))
# T5 and CodeT5 reserve 100 sentinels at the end of the vocabulary.
NUM_SENTINELS = 100

# The files `save_pretrained` writes and `from_pretrained` needs.
HF_TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def sentinel_token(index: int) -> str:
    """The text of sentinel `index` ("<extra_id_{index}>")."""
    return f"<extra_id_{index}>"


def sentinel_id(index: int, vocab_size: int, num_sentinels: int = NUM_SENTINELS) -> int:
    """Id of <extra_id_{index}>: counted down from the top of the vocabulary (T5 layout).

    Raises:
      ValueError: `index` outside [0, num_sentinels).
    """
    if not 0 <= index < num_sentinels:
        raise ValueError(f"sentinel index {index} outside [0, {num_sentinels})")
    return vocab_size - 1 - index


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    num_sentinels: int = NUM_SENTINELS,
    min_frequency: int = 2,
    model_max_length: int | None = None,
):
    """Train a byte-level BPE tokenizer with the CodeT5 layout (module docstring).

    Args:
      texts: training documents (e.g. `corpus.read_corpus(...).texts()`).
      vocab_size: total vocabulary size V, sentinels included (CodeT5: 32100).
      num_sentinels: S, sentinel tokens at ids V-S .. V-1.
      min_frequency: a pair must occur this often to be merged.
      model_max_length: the length transformers warns beyond (None: no limit; whole
        source files are encoded before chunking, so a limit here only makes noise).
    Returns:
      a `transformers.PreTrainedTokenizerFast` (save with `save_tokenizer`).
    Raises:
      ValueError: a vocabulary too small for the byte alphabet and the special tokens, or
        a corpus too small to learn V-S-5-256 merges (the sentinels must land at V-S..V-1,
        so a short vocabulary is an error, never silently shifted ids).
    """
    # Heavy imports inside: this module is imported by light CLI paths.
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    base_size = vocab_size - num_sentinels
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if base_size < len(SPECIAL_TOKENS) + len(alphabet):
        raise ValueError(
            f"vocab_size {vocab_size} leaves {base_size} ids after {num_sentinels} sentinels; "
            f"need at least {len(SPECIAL_TOKENS) + len(alphabet)} (5 special tokens + 256 bytes)"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # RoBERTa's <mask> strips the space before it (lstrip); ours does not, so decoding
    # bare tokens gives back source text exactly, even text that contains "<mask>".
    specials = [AddedToken(t, special=True) for t in SPECIAL_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=base_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    learned = tokenizer.get_vocab_size(with_added_tokens=True)
    if learned != base_size:
        raise ValueError(
            f"BPE training produced {learned} tokens, expected {base_size} (= vocab_size "
            f"{vocab_size} - {num_sentinels} sentinels): the corpus is too small for this "
            f"vocabulary; give more text or a smaller vocab_size"
        )
    for index, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != index:
            raise RuntimeError(f"{token} got id {tokenizer.token_to_id(token)}, expected {index}")
    # Added in decreasing index order so <extra_id_0> gets the highest id.
    sentinels = [sentinel_token(i) for i in reversed(range(num_sentinels))]
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in sentinels])
    # Positional (sep, cls, trim_offsets, add_prefix_space): the binding takes no keywords.
    tokenizer.post_processor = processors.RobertaProcessing(
        (SPECIAL_TOKENS[EOS_ID], EOS_ID), (SPECIAL_TOKENS[BOS_ID], BOS_ID), False, False
    )
    kwargs = {}
    if model_max_length is not None:
        kwargs["model_max_length"] = model_max_length
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=SPECIAL_TOKENS[PAD_ID],
        bos_token=SPECIAL_TOKENS[BOS_ID],
        eos_token=SPECIAL_TOKENS[EOS_ID],
        unk_token=SPECIAL_TOKENS[UNK_ID],
        mask_token=SPECIAL_TOKENS[MASK_ID],
        cls_token=SPECIAL_TOKENS[BOS_ID],
        sep_token=SPECIAL_TOKENS[EOS_ID],
        extra_special_tokens=[sentinel_token(i) for i in range(num_sentinels)],
        **kwargs,
    )
    check_layout(hf_tokenizer, num_sentinels=num_sentinels)
    return hf_tokenizer


def check_layout(tokenizer, *, num_sentinels: int = NUM_SENTINELS) -> None:
    """Raise ValueError unless `tokenizer` has the CodeT5 layout of the module docstring.

    Works on any transformers tokenizer (ours, or a released CodeT5 one).
    """
    vocab = tokenizer.get_vocab()
    size = len(tokenizer)
    problems = []
    for index, token in enumerate(SPECIAL_TOKENS):
        if vocab.get(token) != index:
            problems.append(f"{token} has id {vocab.get(token)}, expected {index}")
    for index in range(num_sentinels):
        token, want = sentinel_token(index), sentinel_id(index, size, num_sentinels)
        if vocab.get(token) != want:
            problems.append(f"{token} has id {vocab.get(token)}, expected {want}")
    for attr, index in (("pad", PAD_ID), ("bos", BOS_ID), ("eos", EOS_ID), ("unk", UNK_ID)):
        if getattr(tokenizer, f"{attr}_token_id") != index:
            problems.append(
                f"{attr}_token_id is {getattr(tokenizer, f'{attr}_token_id')}, expected {index}"
            )
    if problems:
        raise ValueError(
            f"tokenizer (size {size}) does not have the CodeT5 layout: " + "; ".join(problems[:8])
        )


def sentinel_ids(tokenizer, num_sentinels: int = NUM_SENTINELS) -> list[int]:
    """[id of <extra_id_0>, id of <extra_id_1>, ...] read from the tokenizer's vocabulary
    (what `objectives.msp_example` takes as `sentinel_ids`)."""
    vocab = tokenizer.get_vocab()
    missing = [sentinel_token(i) for i in range(num_sentinels) if sentinel_token(i) not in vocab]
    if missing:
        raise ValueError(
            f"tokenizer lacks sentinel tokens {missing[:3]}... ({len(missing)} missing)"
        )
    return [vocab[sentinel_token(i)] for i in range(num_sentinels)]


def save_tokenizer(tokenizer, out_dir: str | os.PathLike) -> pathlib.Path:
    """Write any transformers tokenizer in Hugging Face format to `out_dir` (created if
    needed), readable by transformers 4 as well as 5.

    Every place that writes a tokenizer beside a model (`checkpoints.save_model_dir`,
    `models.hf.export_hf`) goes through here, so their folders load the same way.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    # transformers 5 names its generic fast class "TokenizersBackend", which transformers 4
    # does not know; "PreTrainedTokenizerFast" loads the same tokenizer.json in both. A
    # specific class (e.g. CodeT5's "RobertaTokenizer") is kept as it is.
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    # transformers 5 keeps the special tokens in tokenizer_config.json only; transformers 4
    # (and other readers of HF folders) still look for the legacy special_tokens_map.json.
    special_map = dict(tokenizer.special_tokens_map)
    special_map["additional_special_tokens"] = [str(t) for t in _extra_special_tokens(tokenizer)]
    with open(out / "special_tokens_map.json", "w", encoding="utf-8") as f:
        json.dump(special_map, f, indent=2, ensure_ascii=False)
        f.write("\n")
    needed = HF_TOKENIZER_FILES if getattr(tokenizer, "is_fast", False) else (
        "tokenizer_config.json", "special_tokens_map.json")  # slow ones keep vocab files
    missing = [name for name in needed if not (out / name).is_file()]
    if missing:
        raise RuntimeError(f"save_pretrained did not write {missing} into {out}")
    return out


def _extra_special_tokens(tokenizer) -> list:
    """The sentinels and other extra special tokens (the attribute was renamed in
    transformers 5 from `additional_special_tokens`)."""
    for attr in ("extra_special_tokens", "additional_special_tokens"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, (list, tuple)):
            return list(value)
    return []


def load_tokenizer(name_or_path: str | os.PathLike):
    """Load a tokenizer with `transformers.AutoTokenizer`: a folder written by
    `save_tokenizer` or beside a model, a released CodeT5 folder, or a hub id / short name
    of `coderl_jax.hub.HUB_IDS` (e.g. "Salesforce/codet5-base"; only when the hub is
    reachable)."""
    from transformers import AutoTokenizer

    from coderl_jax.hub import resolve_model_dir

    return AutoTokenizer.from_pretrained(str(resolve_model_dir(name_or_path)))


def encode_documents(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Bare token ids of each text (no <s>/</s>; the objectives add their own framing).

    Returns a list of `[num_tokens_i]` id lists, one per text.
    """
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]
