"""metrics.jsonl + TensorBoard: what `loop.run_training` logs, and how it is read back.

One JSON line per logged step in `workdir/metrics.jsonl` and TensorBoard scalars in
`workdir/tensorboard/`, on process 0 only. A resumed run drops the records past its
checkpoint (they are about to be redone), so each step is logged once.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import numpy as np

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricsWriter:
    """metrics.jsonl + TensorBoard scalars in a workdir; a no-op on processes other than 0.

    resumed_step: the step a resumed run restarts from. Records of later steps (written by
    the interrupted run after its last checkpoint, and about to be redone) and a torn last
    line are dropped, so metrics.jsonl holds each step once, as TensorBoard purges the
    steps past a restart.
    """

    def __init__(self, workdir: str | os.PathLike, resumed_step: int | None = None):
        self.enabled = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / METRICS_FILE
        self._tb = None
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resumed_step is not None and self.path.is_file():
                self._drop_after(resumed_step)
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(pathlib.Path(workdir) / TENSORBOARD_DIR))

    def write(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step)}
        for key, value in values.items():
            value = np.asarray(value)
            record[key] = value.item() if value.ndim == 0 else value.tolist()
            if value.ndim == 0 and np.isfinite(value):
                self._tb.add_scalar(key, float(value), int(step))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def _drop_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn by a kill mid-write
            if isinstance(record, dict) and record.get("step", 0) <= step:
                kept.append(line + "\n")
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.path)


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The records of `workdir/metrics.jsonl` (one dict per logged step)."""
    path = pathlib.Path(workdir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
