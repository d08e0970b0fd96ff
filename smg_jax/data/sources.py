"""The SMG dataset a config's ``data`` section names, opened: every task's one loader.

Classification (``smg/clips``), online recognition (``smg/sequences``) and
emotional state (``smg/emotion``) all read ``data.manual_dir``,
``data.data_dir``, ``data.synthetic_scale`` and ``data.synthetic_seed`` the
same way: write a synthetic SMG on demand, build the TFDS dataset when it is
not built yet, open the splits as random-access sources and say whether the
data are synthetic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from smg_jax.data import pipeline, synthetic_source


@dataclasses.dataclass
class OpenedSMG:
    """The opened splits of one ``smg/<config>`` dataset and what is known about it.

    Attributes:
      sources: one random-access source per split asked for, in that order
        (splits the dataset lacks are left out when ``missing_ok``).
      split_names: the split of each source.
      info: the builder's ``tfds.core.DatasetInfo`` (features, class names).
      synthetic: whether the raw data were written by ``tfds_smg.synthetic``.
      description: ``"SMG"`` or ``"SYNTHETIC SMG (<scale> scale)"``.
    """

    sources: list[Sequence[Any]]
    split_names: list[str]
    info: Any
    synthetic: bool
    description: str


def describe(metadata: Mapping[str, Any]) -> tuple[bool, str]:
    """``(synthetic, description)`` from a built dataset's metadata."""
    synthetic = bool(metadata.get("synthetic", False))
    scale = (metadata.get("synthetic_marker") or {}).get("scale", "?")
    return synthetic, f"SYNTHETIC SMG ({scale} scale)" if synthetic else "SMG"


def open_smg(
    data: Any,
    config: str,
    splits: Sequence[str],
    *,
    error: type[ValueError] = ValueError,
    missing_ok: bool = False,
) -> OpenedSMG:
    """Opens (writing a synthetic SMG and building the dataset first if needed) ``splits``.

    Args:
      data: a config's ``data`` section (``manual_dir``, ``data_dir``,
        ``synthetic_scale``, ``synthetic_seed``).
      config: the builder config: ``"clips"``, ``"sequences"`` or ``"emotion"``.
      splits: split names or TFDS slices (``"train"``, ``"test[:10%]"``).
      error: the task's exception type, for a synthetic scale without a folder
        or a folder of real data under a synthetic scale.
      missing_ok: leave out the splits the dataset does not have (a raw
        folder holding only test participants builds no ``train`` split)
        instead of failing.
    """
    import tensorflow_datasets as tfds

    manual_dir = synthetic_source.ensure_raw_data(data, error)
    pipeline.prepared_builder(data.data_dir, config, manual_dir)
    builder = tfds.builder(f"smg/{config}", data_dir=data.data_dir)
    names = [s for s in splits if not missing_ok or s in builder.info.splits]
    sources = [
        pipeline.load_split(data.data_dir, config, split, manual_dir=manual_dir) for split in names
    ]
    synthetic, description = describe(dict(builder.info.metadata or {}))
    return OpenedSMG(sources, names, builder.info, synthetic, description)
