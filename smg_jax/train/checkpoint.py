"""Checkpoints with orbax: the latest for resume, the best by a metric, and run metadata.

Layout under a run's workdir::

    checkpoints/<step>/state   the TrainState tree
    checkpoints/<step>/meta    JSON: epoch, data-iterator position, best metric so far
    best/<step>/...            the same, for the best evaluation so far

Orbax writes each step into a temporary folder and renames it when
complete, so a run killed at any moment (``kill -9`` included) leaves only
whole checkpoints behind, and ``latest`` is always one that can be restored.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

from smg_jax.train.state import TrainState


class Checkpointer:
    """Saves and restores ``(TrainState, meta)`` pairs in one directory.

    Args:
      directory: where step folders go (created if needed).
      max_to_keep: how many to keep; with ``best_metric`` the best ones are
        kept, otherwise the newest.
      best_metric: the key of ``meta["metrics"]`` that ranks checkpoints.
      best_mode: ``"max"`` or ``"min"``.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        max_to_keep: int = 2,
        best_metric: str | None = None,
        best_mode: str = "max",
    ) -> None:
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            best_fn=(lambda meta: float(meta["metrics"][best_metric])) if best_metric else None,
            best_mode=best_mode,
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )
        self._best_metric = best_metric

    def save(self, step: int, state: TrainState, meta: dict[str, Any]) -> None:
        """Writes ``state`` and ``meta`` (JSON-serialisable) as checkpoint ``step``."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        # best_fn reads the metrics from the "metrics" argument.
        metrics = meta if self._best_metric else None
        self._manager.save(step, args=args, metrics=metrics, force=True)
        self._manager.wait_until_finished()

    def overwrite_meta(self, step: int, state: TrainState, meta: dict[str, Any]) -> None:
        """Rewrites checkpoint ``step`` (same state, newer metadata such as the final eval)."""
        self._manager.delete(step)
        self.save(step, state, meta)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step() if self._best_metric else self.latest_step()

    def restore(
        self, target: TrainState, step: int | None = None
    ) -> tuple[TrainState, dict[str, Any]] | None:
        """Restores checkpoint ``step`` (default: latest) shaped like ``target``.

        Returns ``None`` when the directory holds no checkpoint.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["meta"])

    def close(self) -> None:
        self._manager.close()
