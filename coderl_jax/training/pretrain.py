"""Pretraining: a mixture of masked span prediction (MSP) and next-token prediction (NTP) on a
folder of Python files (default: the running interpreter's standard library).

Each row of a batch comes from MSP with probability `msp_rate`, else from NTP, drawn from
(seed, row position), so the stream is deterministic and resumable. Windows are sized so no
example is ever truncated (`objectives.max_chunk_length`). Without a tokenizer dir, a
byte-level BPE with CodeT5's layout is trained on the corpus first and saved in the workdir.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
from typing import Callable, Iterator

import jax
import numpy as np

from coderl_jax.training import batch as batch_lib
from coderl_jax.training import loop, sources
from coderl_jax.training.model_io import Loader, load_init, save_final
from coderl_jax.training.optimizer import OptimizerConfig
from coderl_jax.training.step import ActorModel


def mixture_rows(documents, *, msp_rate: float, encoder_length: int, decoder_length: int,
                 seed: int, sentinel_ids, eos_id: int, bos_id: int | None) -> Iterator[dict]:
    """An endless stream of MSP/NTP examples (row i's objective drawn from (seed, i))."""
    from coderl_jax.data import objectives

    streams = {}
    for name in ("msp", "ntp"):
        chunk = objectives.max_chunk_length(name, encoder_length, decoder_length,
                                            with_bos=bos_id is not None)
        streams[name] = objectives.pretrain_examples(
            documents, name, chunk, seed=seed, sentinel_ids=sentinel_ids, eos_id=eos_id,
            bos_id=bos_id, num_epochs=None)
    for i in itertools.count():
        name = "msp" if np.random.default_rng([seed, i, 17]).random() < msp_rate else "ntp"
        yield next(streams[name])


def pretrain(workdir: str, *, trainer: loop.TrainerConfig, optimizer: OptimizerConfig,
             corpus: str | None = None, tokenizer: str | None = None,
             vocab_size: int = 32100, init_model: str | None = None,
             corpus_max_bytes: int | None = None, msp_rate: float = 0.5,
             encoder_length: int = 256, decoder_length: int = 128,
             loader: Loader = load_init, log: Callable[[str], None] = print) -> pathlib.Path:
    """Pretrain the actor with MSP + NTP; returns its model dir (workdir/model)."""
    from coderl_jax.data import corpus as corpus_lib
    from coderl_jax.data import tokenizer as tok_lib

    texts = corpus_lib.read_corpus(corpus, max_bytes=corpus_max_bytes).texts()
    if not texts:
        raise ValueError(f"pretrain: no .py files under {corpus or corpus_lib.default_root()}")
    if tokenizer is None and init_model is None:
        # Trained once per workdir (a resumed run reuses it), by process 0; the others
        # read it after the barrier.
        tok_dir = pathlib.Path(workdir) / "tokenizer"
        if jax.process_index() == 0 and not tok_dir.is_dir():
            partial = tok_dir.with_name(tok_dir.name + ".partial")  # renamed when complete
            shutil.rmtree(partial, ignore_errors=True)
            tok_lib.save_tokenizer(tok_lib.train_tokenizer(texts, vocab_size), partial)
            os.replace(partial, tok_dir)
        loop.sync_processes("coderl_pretrain_tokenizer")
        tokenizer = str(tok_dir)
    init = loader(init_model, tokenizer)
    tok = init.tokenizer
    documents = tok_lib.encode_documents(tok, texts)
    log(f"[pretrain] {len(documents)} files, {sum(map(len, documents)):,} tokens; "
        f"MSP {msp_rate:.0%} / NTP {1 - msp_rate:.0%}")
    sentinels = tok_lib.sentinel_ids(tok)

    def make_batches(start: int) -> Iterator[batch_lib.Batch]:
        rows = mixture_rows(documents, msp_rate=msp_rate, encoder_length=encoder_length,
                            decoder_length=decoder_length, seed=trainer.seed,
                            sentinel_ids=sentinels, eos_id=tok.eos_token_id,
                            bos_id=tok.bos_token_id)
        rows = itertools.islice(rows, start * trainer.batch_size, None)  # replay to resume
        local = trainer.batch_size // jax.process_count()
        while True:
            global_rows = [next(rows) for _ in range(trainer.batch_size)]
            tokens = sum(len(r["targets"]) for r in global_rows)
            yield batch_lib.ce_batch(sources.process_rows(global_rows), local, encoder_length,
                                     decoder_length, num_tokens=tokens)

    state = loop.run_training(
        workdir=workdir, model=ActorModel(init.config), trainer=trainer,
        optimizer=optimizer,
        init_params=(lambda: init.params) if init.params is not None else None,
        source=sources.StreamSource(make_batches), log=log, desc="pretrain")
    out = save_final(workdir, init, state,
                     metadata={"stage": "pretrain", "init": init.source})
    log(f"[pretrain] wrote {out}")
    return out
