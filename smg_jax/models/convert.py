"""Helpers that map PyTorch ``state_dict`` entries onto Flax variables.

Layouts: PyTorch ``Conv2d`` weights are ``(out, in, kh, kw)``, Flax ``nn.Conv``
kernels ``(kh, kw, in, out)``; ``Linear`` weights are ``(out, in)``, Flax
``nn.Dense`` kernels ``(in, out)``. PyTorch BatchNorm keeps ``weight``,
``bias``, ``running_mean`` and ``running_var``; Flax keeps ``scale`` and
``bias`` in ``params`` and ``mean`` and ``var`` in ``batch_stats``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from smg_jax.models import resolve_skeleton


class StateDictError(ValueError):
    """A PyTorch state_dict does not fit the model it is loaded into."""


class StateDictReader:
    """Reads a ``state_dict`` by name, remembering which entries were used.

    ``finish()`` raises if entries were left unused (apart from those listed
    as ignorable), so a renamed or misplaced weight can never be dropped
    silently. ``num_batches_tracked`` entries are always ignorable.
    """

    def __init__(self, state_dict: Mapping[str, Any], model_name: str) -> None:
        self._arrays = {
            # Checkpoints saved from nn.DataParallel prefix every name with "module.".
            key.removeprefix("module."): np.asarray(value)
            for key, value in state_dict.items()
        }
        self._used: set[str] = set()
        self.model_name = model_name

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Returns entry ``key`` as float32 (checked against ``shape`` if given)."""
        if key not in self._arrays:
            near = [k for k in self._arrays if k.split(".")[-1] == key.split(".")[-1]][:5]
            raise StateDictError(
                f"{self.model_name}: the state_dict has no entry {key!r} (entries with the same "
                f"suffix: {near}). Check that the checkpoint was saved from the same model and "
                "constructor arguments."
            )
        value = self._arrays[key]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise StateDictError(
                f"{self.model_name}: entry {key!r} has shape {tuple(value.shape)}, the model "
                f"expects {tuple(shape)}. Check num_classes, num_joints and channel widths."
            )
        self._used.add(key)
        return value.astype(np.float32)

    def mark_used(self, keys: Iterable[str]) -> None:
        """Declares constants the Flax model rebuilds itself (e.g. adjacency buffers)."""
        self._used.update(k for k in keys if k in self._arrays)

    def finish(self, ignore_suffixes: tuple[str, ...] = ()) -> None:
        """Raises ``StateDictError`` if any entry was not consumed."""
        ignored = ("num_batches_tracked", *ignore_suffixes)
        left = sorted(k for k in self._arrays if k not in self._used and not k.endswith(ignored))
        if left:
            raise StateDictError(
                f"{self.model_name}: {len(left)} state_dict entries were not used: "
                f"{left[:10]}{' ...' if len(left) > 10 else ''}. The checkpoint does not match "
                "this model's configuration."
            )

    # Typed mappings ------------------------------------------------------

    def conv(self, prefix: str, bias: bool = True) -> dict[str, np.ndarray]:
        """``Conv2d`` (or ``Conv1d``) -> ``{"kernel": (kh, [kw,] in, out), "bias"}``."""
        weight = self.get(f"{prefix}.weight")
        axes = (*tuple(range(2, weight.ndim)), 1, 0)
        out = {"kernel": np.transpose(weight, axes)}
        if bias:
            out["bias"] = self.get(f"{prefix}.bias")
        return out

    def conv_as_dense(self, prefix: str, bias: bool = True) -> dict[str, np.ndarray]:
        """A 1x1 ``Conv2d`` -> ``nn.Dense`` ``{"kernel": (in, out), "bias"}``."""
        weight = self.get(f"{prefix}.weight")
        if weight.ndim > 2 and any(s != 1 for s in weight.shape[2:]):
            raise StateDictError(f"{self.model_name}: {prefix}.weight is not a 1x1 convolution.")
        out = {"kernel": weight.reshape(weight.shape[0], weight.shape[1]).T}
        if bias:
            out["bias"] = self.get(f"{prefix}.bias")
        return out

    def linear(self, prefix: str, bias: bool = True) -> dict[str, np.ndarray]:
        """``Linear`` -> ``nn.Dense`` ``{"kernel": (in, out), "bias"}``."""
        out = {"kernel": self.get(f"{prefix}.weight").T}
        if bias:
            out["bias"] = self.get(f"{prefix}.bias")
        return out

    def batch_norm(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """BatchNorm -> ``({"scale", "bias"}, {"mean", "var"})`` for params and batch_stats."""
        params = {"scale": self.get(f"{prefix}.weight"), "bias": self.get(f"{prefix}.bias")}
        stats = {
            "mean": self.get(f"{prefix}.running_mean"),
            "var": self.get(f"{prefix}.running_var"),
        }
        return params, stats


# Additions for the graph-convolution models (stgcn, agcn, gcnnas, ctrgcn) ------


def temporal_conv(reader: StateDictReader, prefix: str, bias: bool = True) -> dict[str, np.ndarray]:
    """A ``Conv2d`` with a ``(k, 1)`` kernel -> ``{"kernel": (k, in, out), "bias"}``.

    The layout of a 1-D convolution over frames with joints folded into the
    batch (``layers.TemporalConv``). A ``(k, w)`` kernel with ``w != 1`` is
    an error.
    """
    weight = reader.get(f"{prefix}.weight")
    if weight.ndim != 4 or weight.shape[3] != 1:
        raise StateDictError(
            f"{reader.model_name}: {prefix}.weight has shape {weight.shape}; expected a Conv2d "
            "weight (out, in, k, 1) of a temporal convolution."
        )
    out = {"kernel": np.transpose(weight[..., 0], (2, 1, 0))}
    if bias:
        out["bias"] = reader.get(f"{prefix}.bias")
    return out


def _shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(str(getattr(k, "key", k)) for k in path): tuple(np.shape(leaf))
        for path, leaf in flat
    }


def check_variables(model_name: str, variables: Any, module: Any, example_input: Any) -> None:
    """Raises ``StateDictError`` unless ``variables`` matches ``module.init`` leaf for leaf.

    Compares the paths and shapes of the converted tree with those of
    ``module.init(key, example_input)`` (computed abstractly, no FLOPs), so a
    converter that forgot, invented or mis-shaped a variable fails loudly.
    ``example_input`` may be an array or a ``jax.ShapeDtypeStruct``.
    """
    import jax

    expected = jax.eval_shape(lambda x: module.init(jax.random.key(0), x), example_input)
    got, want = _shapes_by_path(variables), _shapes_by_path(expected)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    if missing or extra or wrong:
        details = [
            f"missing {missing[:5]}" if missing else "",
            f"unexpected {extra[:5]}" if extra else "",
            "mis-shaped " + ", ".join(f"{k}: {got[k]} vs {want[k]}" for k in wrong[:5])
            if wrong
            else "",
        ]
        raise StateDictError(
            f"{model_name}: the converted variables do not fit the model: "
            f"{'; '.join(d for d in details if d)}."
        )


class VariableTree:
    """Collects converted arrays into ``{"params": ..., "batch_stats": ...}`` by Flax path.

    Paths are slash-separated module names, e.g. ``"l5/gcn1/conv_d"``.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.batch_stats: dict[str, Any] = {}

    @staticmethod
    def _put(root: dict[str, Any], path: str, value: Any) -> None:
        *parents, leaf = path.split("/")
        node = root
        for name in parents:
            node = node.setdefault(name, {})
        if leaf in node:
            raise ValueError(f"VariableTree: {path!r} is set twice.")
        node[leaf] = value

    def param(self, path: str, value: Any) -> None:
        """Puts a parameter leaf or a ``{"kernel", "bias"}`` dict at ``path``."""
        self._put(self.params, path, value)

    def stats(self, path: str, value: Any) -> None:
        """Puts running statistics ``{"mean", "var"}`` (e.g. of fused BatchNorms) at ``path``."""
        self._put(self.batch_stats, path, value)

    def batch_norm(self, path: str, reader: StateDictReader, prefix: str) -> None:
        """Puts BatchNorm ``prefix``'s scale/bias and running statistics at ``path``."""
        params, stats = reader.batch_norm(prefix)
        self._put(self.params, path, params)
        self._put(self.batch_stats, path, stats)

    def variables(self) -> dict[str, Any]:
        return {"params": self.params, "batch_stats": self.batch_stats}


def load_stacked_conv(reader: StateDictReader, prefixes: Sequence[str]) -> dict[str, np.ndarray]:
    """Several ``Conv2d((k, 1))`` side by side -> one ``TemporalConv`` of all their outputs."""
    parts = [temporal_conv(reader, prefix) for prefix in prefixes]
    return {
        "kernel": np.concatenate([p["kernel"] for p in parts], axis=-1),
        "bias": np.concatenate([p["bias"] for p in parts], axis=-1),
    }


def load_adaptive_unit(
    reader: StateDictReader,
    tree: VariableTree,
    torch_prefix: str,
    ours: str,
    num_subsets: int,
    branches: Sequence[str],
) -> None:
    """Maps one upstream ``TCN_GCN_unit`` (2s-AGCN or GCN-NAS) onto an ``AdaptiveUnit``."""
    gcn, k = f"{torch_prefix}.gcn1", num_subsets
    if f"{gcn}.PA" in reader:
        tree.param(f"{ours}/gcn1/PA", reader.get(f"{gcn}.PA"))
    names = {"spatial": ("conv_a", "conv_b"), "temporal": ("conv_T1", "conv_T2")}
    for branch in branches:
        if branch == "spatiotemporal":
            for name in ("conv_ST11", "conv_ST12"):
                for j in range(2 * k):
                    tree.param(
                        f"{ours}/gcn1/{name}_{j}", temporal_conv(reader, f"{gcn}.{name}.{j}")
                    )
            continue
        for name in names[branch]:
            prefixes = [f"{gcn}.{name}.{i}" for i in range(k)]
            tree.param(f"{ours}/gcn1/{name}", load_stacked_conv(reader, prefixes))
    conv_d = [reader.conv_as_dense(f"{gcn}.conv_d.{i}") for i in range(k)]
    tree.param(
        f"{ours}/gcn1/conv_d",
        {
            "kernel": np.stack([c["kernel"] for c in conv_d]),
            "bias": np.stack([c["bias"] for c in conv_d]),
        },
    )
    tree.batch_norm(f"{ours}/gcn1/bn", reader, f"{gcn}.bn")
    if f"{gcn}.down.0.weight" in reader:
        tree.param(f"{ours}/gcn1/down/conv", temporal_conv(reader, f"{gcn}.down.0"))
        tree.batch_norm(f"{ours}/gcn1/down/bn", reader, f"{gcn}.down.1")
    tree.param(f"{ours}/tcn1/conv", temporal_conv(reader, f"{torch_prefix}.tcn1.conv"))
    tree.batch_norm(f"{ours}/tcn1/bn", reader, f"{torch_prefix}.tcn1.bn")
    if f"{torch_prefix}.residual.conv.weight" in reader:
        tree.param(f"{ours}/residual/conv", temporal_conv(reader, f"{torch_prefix}.residual.conv"))
        tree.batch_norm(f"{ours}/residual/bn", reader, f"{torch_prefix}.residual.bn")


def infer_num_persons(reader: StateDictReader, cls: type, overrides: Mapping) -> dict:
    """Adds ``num_persons`` read off ``data_bn`` (``M * V * C`` channels) unless given."""
    if "num_persons" in overrides or "data_bn.running_mean" not in reader:
        return dict(overrides)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    v = resolve_skeleton(overrides.get("skeleton", defaults["skeleton"])).num_joints
    c = overrides.get("in_channels", defaults["in_channels"])
    size = reader.get("data_bn.running_mean").shape[0]
    if size % (v * c):
        return dict(overrides)  # check_variables reports the mismatch.
    return {**overrides, "num_persons": size // (v * c)}
