"""seqio tasks for pod input pipelines (T5X-style), built on the same example builders.

seqio is an optional extra (`pip install coderl-jax[seqio]`; it pulls TensorFlow), so
nothing here imports it until `register_tasks()` runs. The tasks:

    coderl_apps           APPS problem -> reference solution     splits from `apps_splits`
    coderl_mbpp           MBPP problem -> reference solution     splits from `mbpp_splits`
    coderl_synthetic      synthetic problem -> reference         "train", "test"
    coderl_pretrain_msp   masked span prediction on the corpus   "train"
    coderl_pretrain_ntp   next-token prediction on the corpus    "train"

Every task's source yields examples made by `objectives.supervised_examples` or
`objectives.pretrain_examples` (prompts from `prompts.format_prompt`, problems from
`loaders.load_problems` / `synthetic.generate_problems`): the token ids a seqio pipeline sees
are, by construction, the ones the numpy pipeline builds; no preprocessing is re-written in
TensorFlow. Features: "inputs" and "targets", int32 [length], already framed (EOS, and BOS on
inputs when `add_bos`), so the output features have `add_eos=False`; problem tasks also carry
"task_id". Trimming, padding and packing are left to seqio's feature converters (e.g.
`seqio.EncDecFeatureConverter(pack=True)`), as T5X expects.

Data is read lazily: registering reads nothing; the first `get_dataset` of a split loads
(and caches) its problems or the tokenized corpus.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

TASK_NAMES: tuple[str, ...] = (
    "coderl_apps",
    "coderl_mbpp",
    "coderl_synthetic",
    "coderl_pretrain_msp",
    "coderl_pretrain_ntp",
)
# Hub splits by default (`loaders.load_problems(..., "hub:<split>")`); tests pass local files.
DEFAULT_APPS_SPLITS: Mapping[str, str] = {"train": "hub:train", "test": "hub:test"}
DEFAULT_MBPP_SPLITS: Mapping[str, str] = {
    "train": "hub:train",
    "validation": "hub:validation",
    "test": "hub:test",
}
SYNTHETIC_SPLITS: tuple[str, ...] = ("train", "test")
PRETRAIN_SPLITS: tuple[str, ...] = ("train",)


def _import_seqio():
    try:
        import seqio
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            f"seqio tasks need the optional seqio extra: pip install 'coderl-jax[seqio]' ({err})"
        ) from err
    return seqio, tf


@functools.cache
def _tokenizer(tokenizer_dir: str):
    from coderl_jax.data import tokenizer as tok_lib

    return tok_lib.load_tokenizer(tokenizer_dir)


@functools.cache
def _vocabulary_class():
    """seqio.Vocabulary over a transformers tokenizer (defined on first use: seqio is lazy)."""
    seqio, tf = _import_seqio()
    import numpy as np

    class HFVocabulary(seqio.Vocabulary):
        """A transformers tokenizer seen as a seqio vocabulary.

        `encode` gives bare ids (seqio adds EOS itself when a feature asks for it); `decode`
        drops <pad>, <s> and </s> but keeps sentinels, so MSP targets stay readable. The
        sentinels are part of the tokenizer's vocabulary, hence extra_ids = 0.
        """

        def __init__(self, tokenizer_dir: str):
            self.tokenizer_dir = str(tokenizer_dir)
            super().__init__(extra_ids=0)

        @property
        def tokenizer(self):
            return _tokenizer(self.tokenizer_dir)

        @property
        def bos_id(self):
            return self.tokenizer.bos_token_id

        @property
        def eos_id(self):
            return self.tokenizer.eos_token_id

        @property
        def pad_id(self):
            return self.tokenizer.pad_token_id

        @property
        def unk_id(self):
            return self.tokenizer.unk_token_id

        @property
        def _base_vocab_size(self):
            return len(self.tokenizer)

        def _encode(self, s):
            return self.tokenizer(s, add_special_tokens=False)["input_ids"]

        def _decode(self, ids):
            drop = {self.pad_id, self.bos_id, self.eos_id}
            return self.tokenizer.decode([int(i) for i in ids if int(i) not in drop])

        def _encode_tf(self, s):
            def encode(text):
                # numpy_function hands a scalar string as bytes, or (eagerly) a 0-d array.
                text = text.item() if isinstance(text, np.ndarray) else text
                return np.asarray(self._encode(text.decode("utf-8")), np.int32)

            ids = tf.numpy_function(encode, [s], tf.int32)
            ids.set_shape([None])
            return ids

        def _decode_tf(self, ids):
            def decode(array):
                flat = array.reshape(-1, array.shape[-1]) if array.ndim else array.reshape(1, 1)
                out = np.array([self._decode(row).encode("utf-8") for row in flat], dtype=object)
                return out.reshape(array.shape[:-1]) if array.ndim else out.reshape(())

            text = tf.numpy_function(decode, [ids], tf.string)
            text.set_shape(ids.shape[:-1])
            return text

        def __eq__(self, other):
            return isinstance(other, HFVocabulary) and other.tokenizer_dir == self.tokenizer_dir

        def __hash__(self):
            return hash(("HFVocabulary", self.tokenizer_dir))

    return HFVocabulary


def make_vocabulary(tokenizer_dir: str):
    """The seqio vocabulary of the tokenizer saved in `tokenizer_dir`."""
    return _vocabulary_class()(tokenizer_dir)


def _dataset_fn(
    make_examples: Callable[[str], Iterator[dict]], splits: Sequence[str], with_task_id: bool
) -> Callable[..., Any]:
    """A seqio `dataset_fn(split, shuffle_files, seed)` over a Python example generator."""
    _, tf = _import_seqio()
    signature = {
        "inputs": tf.TensorSpec(shape=(None,), dtype=tf.int32),
        "targets": tf.TensorSpec(shape=(None,), dtype=tf.int32),
    }
    if with_task_id:
        signature["task_id"] = tf.TensorSpec(shape=(), dtype=tf.string)

    def dataset_fn(split: str, shuffle_files: bool = False, seed: int | None = None):
        # shuffle_files/seed are seqio's file-level shuffling; our sources are not files, and
        # the example order and randomness are fixed by the builders' own seed. seqio's
        # example-level shuffle (get_dataset(shuffle=True)) still applies on top.
        del shuffle_files, seed
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; this task has {list(splits)}")

        def generate():
            for example in make_examples(split):
                yield {key: example[key] for key in signature}

        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    return dataset_fn


def _features(seqio, vocabulary):
    # "task_id" is not an output feature: seqio passes extra keys through the task (they
    # reach `get_dataset` users) and feature converters drop them.
    return {
        "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=False),
        "targets": seqio.Feature(vocabulary=vocabulary, add_eos=False),
    }


def register_tasks(
    tokenizer_dir: str,
    *,
    apps_splits: Mapping[str, str] | None = None,
    apps_example_tests: Mapping[str, str] | None = None,
    mbpp_splits: Mapping[str, str] | None = None,
    synthetic_num_problems: Mapping[str, int] | None = None,
    synthetic_seed: int = 0,
    max_source_length: int | None = 600,
    max_target_length: int | None = 512,
    corpus_root: str | None = None,
    corpus_include_tests: bool = False,
    corpus_max_files: int | None = None,
    corpus_max_bytes: int | None = None,
    pretrain_encoder_length: int = 512,
    pretrain_decoder_length: int = 512,
    seed: int = 0,
    num_epochs: int | None = None,
    add_bos: bool = True,
) -> tuple[str, ...]:
    """Register (or re-register, replacing) the five tasks of TASK_NAMES.

    Args:
      tokenizer_dir: a tokenizer folder (`tokenizer.save_tokenizer`, or a CodeT5 one).
      apps_splits: split -> APPS file/folder or "hub:<split>" (default DEFAULT_APPS_SPLITS).
      apps_example_tests: split -> CodeRL example-tests file for that APPS split.
      mbpp_splits: split -> MBPP file or "hub:<split>" (default DEFAULT_MBPP_SPLITS).
      synthetic_num_problems: split -> number of generated problems (default: the
        generator's own defaults).
      synthetic_seed: seed of the synthetic generator.
      max_source_length, max_target_length: prompt token budget and longest kept solution
        (see `objectives.supervised_examples`).
      corpus_root, corpus_include_tests, corpus_max_files, corpus_max_bytes: the pretraining
        corpus (`corpus.read_corpus`; root None = the standard library).
      pretrain_encoder_length, pretrain_decoder_length: the corpus is cut into windows whose
        MSP/NTP examples fit these lengths (`objectives.max_chunk_length`).
      seed: data seed of the MSP/NTP examples.
      num_epochs: passes of the pretraining sources; None = an endless stream with fresh
        masks and pivots every epoch (seqio's own repeat would replay the same ones).
      add_bos: start every "inputs" with <s> (CodeT5's framing).
    Returns:
      the registered task names.
    """
    seqio, _ = _import_seqio()
    from coderl_jax.data import corpus as corpus_lib
    from coderl_jax.data import objectives
    from coderl_jax.data import tokenizer as tok_lib

    tokenizer_dir = str(tokenizer_dir)
    vocabulary = make_vocabulary(tokenizer_dir)
    apps_splits = dict(apps_splits if apps_splits is not None else DEFAULT_APPS_SPLITS)
    mbpp_splits = dict(mbpp_splits if mbpp_splits is not None else DEFAULT_MBPP_SPLITS)
    apps_example_tests = dict(apps_example_tests or {})
    unknown = set(apps_example_tests) - set(apps_splits)
    if unknown:
        raise ValueError(
            f"apps_example_tests names splits {sorted(unknown)} not in apps_splits {sorted(apps_splits)}"
        )

    def problems_of(dataset: str, split: str):
        from coderl_jax.data import loaders

        if dataset == "apps":
            kwargs = (
                {"example_tests": apps_example_tests[split]} if split in apps_example_tests else {}
            )
            return loaders.load_problems("apps", apps_splits[split], **kwargs)
        if dataset == "mbpp":
            return loaders.load_problems("mbpp", mbpp_splits[split])
        from coderl_jax.data import synthetic

        count = (synthetic_num_problems or {}).get(split)
        return synthetic.generate_problems(split, count, synthetic_seed)

    def supervised(dataset: str) -> Callable[[str], Iterator[dict]]:
        def make_examples(split: str) -> Iterator[dict]:
            return objectives.supervised_examples(
                problems_of(dataset, split),
                _tokenizer(tokenizer_dir),
                max_source_length=max_source_length,
                max_target_length=max_target_length,
                add_bos=add_bos,
            )

        return make_examples

    @functools.lru_cache(maxsize=1)
    def documents() -> list[list[int]]:
        corpus = corpus_lib.read_corpus(
            corpus_root,
            include_tests=corpus_include_tests,
            max_files=corpus_max_files,
            max_bytes=corpus_max_bytes,
        )
        return tok_lib.encode_documents(_tokenizer(tokenizer_dir), corpus.texts())

    def pretrain(objective: str) -> Callable[[str], Iterator[dict]]:
        def make_examples(split: str) -> Iterator[dict]:
            del split  # "train" only
            tok = _tokenizer(tokenizer_dir)
            bos_id = tok.bos_token_id if add_bos else None
            chunk = objectives.max_chunk_length(
                objective,
                pretrain_encoder_length,
                pretrain_decoder_length,
                with_bos=bos_id is not None,
            )
            return objectives.pretrain_examples(
                documents(),
                objective,
                chunk,
                seed=seed,
                sentinel_ids=tok_lib.sentinel_ids(tok),
                eos_id=tok.eos_token_id,
                bos_id=bos_id,
                num_epochs=num_epochs,
            )

        return make_examples

    sources = {
        "coderl_apps": (supervised("apps"), tuple(apps_splits), True),
        "coderl_mbpp": (supervised("mbpp"), tuple(mbpp_splits), True),
        "coderl_synthetic": (supervised("synthetic"), SYNTHETIC_SPLITS, True),
        "coderl_pretrain_msp": (pretrain("msp"), PRETRAIN_SPLITS, False),
        "coderl_pretrain_ntp": (pretrain("ntp"), PRETRAIN_SPLITS, False),
    }
    for name in TASK_NAMES:
        make_examples, splits, with_task_id = sources[name]
        seqio.TaskRegistry.remove(name)  # re-registration replaces (no-op if absent)
        seqio.TaskRegistry.add(
            name,
            source=seqio.FunctionDataSource(
                dataset_fn=_dataset_fn(make_examples, splits, with_task_id),
                splits=splits,
                caching_permitted=False,
            ),
            output_features=_features(seqio, vocabulary),
            preprocessors=[],
        )
    return TASK_NAMES
