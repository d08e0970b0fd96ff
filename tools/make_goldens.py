"""Regenerates ``tests/golden/`` by running the authors' PyTorch models on CPU.

Usage (from the repository root, in an environment with PyTorch and NumPy)::

    python tools/make_goldens.py --authors-dir DIR [--models stgcn shiftgcn ...]
    python tools/make_goldens.py --authors-dir DIR --weights-from ARCHIVES

``DIR`` holds one checkout per repository, each named as the repository
(``DIR/st-gcn``, ``DIR/2s-AGCN``, ``DIR/Shift-GCN``, ``DIR/MS-G3D``,
``DIR/GCN-NAS``, ``DIR/CTR-GCN``), at the commits ``MODELS`` names. Nothing of
the authors' code is kept here: the script imports it from ``DIR``.

For each model the script builds the authors' module with the constructor
arguments in ``MODELS``, loads the weights that ``tests/golden_weights.py``
rebuilds from the seed with ``load_state_dict(strict=True)``, runs it in eval
mode in float32 on a seeded input and writes ``<model>.npz`` (input, logits,
constants) and ``<model>.json`` (source, arguments, seed, state_dict layout).

``--weights-from ARCHIVES`` instead loads ``ARCHIVES/<model>.npz`` (an
``input``, ``logits`` and the full ``params/<name>`` state_dict), runs the same
construction on those weights and reports ``max|logits - stored logits|``:
a check that this script builds the models as the archive's maker did.
Nothing is written in that mode; the exit status is 1 past ``--tolerance``.

``--sensitivity`` redraws each entry of the golden files in ``--out`` in turn
and lists those that move the logits by no more than the parity tolerance:
the weights a golden cannot check (minutes per model).

Shift-GCN's temporal shift is a CUDA extension upstream; the PyTorch version of
the same bilinear shift in ``experiments/torch_reference_benchmark.py`` stands
in for it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import pathlib
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]
# Both import NumPy (and PyTorch) only: the tests rebuild the same weights beside JAX.
import golden_weights  # noqa: E402

from experiments import torch_reference_benchmark  # noqa: E402

INPUT_SHAPE = (2, 3, 60, 25, 1)  # (N, C, T, V, M), the authors' layout
SEED = 0
NTU_GRAPH = {"graph": "graph.ntu_rgb_d.Graph", "graph_args": {"labeling_mode": "spatial"}}
ONE_BODY = {"num_class": 17, "num_point": 25, "num_person": 1}

# Where each model comes from and how it is built: the published repository, the
# commit the golden files were made at, the module and its constructor arguments.
MODELS: dict[str, dict[str, Any]] = {
    "stgcn": {
        "repository": "yysijie/st-gcn",
        "commit": "221c0e152054b8da593774c0d483e59befdb9061",
        "module": "net.st_gcn.Model",
        "kwargs": {
            "in_channels": 3,
            "num_class": 17,
            "dropout": 0.0,
            "edge_importance_weighting": True,
            "graph_args": {"layout": "ntu-rgb+d", "strategy": "spatial"},
        },
    },
    "agcn": {
        "repository": "lshiwjx/2s-AGCN",
        "commit": "953c14fc10883cd869646328f5d522e9e9282063",
        "module": "model.agcn.Model",
        "kwargs": {**ONE_BODY, **NTU_GRAPH},
    },
    "shiftgcn": {
        "repository": "kchengiva/Shift-GCN",
        "commit": "20276b64d16775c2de33408beb32825d2f93ffa4",
        "module": "model.shift_gcn.Model",
        "kwargs": {**ONE_BODY, **NTU_GRAPH},
    },
    "msg3d": {
        "repository": "kenziyuliu/MS-G3D",
        "commit": "2f927f47143c7242e4875ddb08727bf5396aab46",
        "module": "model.msg3d.Model",
        "kwargs": {
            **ONE_BODY,
            "num_gcn_scales": 13,
            "num_g3d_scales": 6,
            "graph": "graph.ntu_rgb_d.AdjMatrixGraph",
        },
    },
    "gcnnas": {
        "repository": "xiaoiker/GCN-NAS",
        "commit": "da838b7df9615160d67092fade919e2251cf753f",
        "module": "model.agcn3.Model",
        "kwargs": {**ONE_BODY, **NTU_GRAPH},
    },
    "ctrgcn": {
        "repository": "Uason-Chen/CTR-GCN",
        "commit": "e13d7582e281d06711eeecb380a472b278ae1663",
        "module": "model.ctrgcn.Model",
        "kwargs": {**ONE_BODY, **NTU_GRAPH},
    },
}


# ---------------------------------------------------------------------------
# Running the authors' code on a CPU-only PyTorch.
# ---------------------------------------------------------------------------


def _without_device(factory):
    def build(*args, device=None, **kwargs):
        return factory(*args, **kwargs)

    return build


@contextlib.contextmanager
def authors_code(checkout: pathlib.Path) -> Iterator[None]:
    """Imports from ``checkout`` as if it were the working directory, on a CPU-only PyTorch.

    The repositories share top-level package names (``model``, ``graph``), so
    the modules imported from the checkout are dropped again on exit. Shims,
    undone on exit: ``device='cuda'`` in ``torch.zeros`` / ``torch.ones`` is
    ignored, ``Tensor.cuda`` returns the tensor itself, ``np.int`` (removed
    from NumPy) is ``int``, and ``cuda.shift`` is the PyTorch shift of
    ``experiments.torch_reference_benchmark``.
    """
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    saved = {"zeros": torch.zeros, "ones": torch.ones, "cuda": torch.Tensor.cuda}
    shift_package = types.ModuleType("cuda")
    shift_package.__path__ = []
    shift_module = shift_package.shift = torch_reference_benchmark._cpu_shift_module(torch)
    sys.modules.update({"cuda": shift_package, "cuda.shift": shift_module})
    sys.path.insert(0, str(checkout))
    torch.zeros, torch.ones = _without_device(torch.zeros), _without_device(torch.ones)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    had_int = hasattr(np, "int")
    if not had_int:
        np.int = int
    try:
        with warnings.catch_warnings():
            # The authors' deprecated nn.init aliases, one warning per call.
            warnings.simplefilter("ignore", FutureWarning)
            # Shift-GCN casts np.empty's garbage to int before filling it in.
            warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
            yield
    finally:
        torch.zeros, torch.ones, torch.Tensor.cuda = saved["zeros"], saved["ones"], saved["cuda"]
        if not had_int:
            del np.int
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            origin = str(getattr(sys.modules[name], "__file__", None) or "")
            if name in ("cuda", "cuda.shift") or origin.startswith(str(checkout)):
                del sys.modules[name]


def checkout_of(name: str, authors_dir: pathlib.Path) -> pathlib.Path:
    """``authors_dir/<repository name>``, the checkout that ``name`` is imported from."""
    spec = MODELS[name]
    checkout = authors_dir / spec["repository"].split("/")[1]
    if not checkout.is_dir():
        raise SystemExit(
            f"{name}: no checkout at {checkout}; clone https://github.com/{spec['repository']} "
            f"there at commit {spec['commit']}."
        )
    if (checkout / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        if head != spec["commit"]:
            print(f"{name}: warning: {checkout} is at {head}, not {spec['commit']}", flush=True)
    return checkout


def build_model(name: str) -> nn.Module:
    """The authors' module for ``name`` in eval mode; call inside ``authors_code``."""
    module_name, class_name = MODELS[name]["module"].rsplit(".", 1)
    model_class = getattr(importlib.import_module(module_name), class_name)
    torch.manual_seed(0)  # the initial draw is overwritten by load_state_dict
    return model_class(**MODELS[name]["kwargs"]).eval()


def load_weights(model: nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """``load_state_dict(strict=True)``; ``num_batches_tracked`` keeps the model's own value."""
    state = {
        key: torch.from_numpy(np.asarray(weights[key])).to(value.dtype) if key in weights else value
        for key, value in model.state_dict().items()
        if key in weights or key.endswith("num_batches_tracked")
    }
    model.load_state_dict(state, strict=True)


def run_model(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(inputs)).numpy()


# ---------------------------------------------------------------------------
# Golden files.
# ---------------------------------------------------------------------------


def state_dict_layout(model: nn.Module) -> list[golden_weights.Entry]:
    """``(name, shape, dtype)`` of every entry but the ``num_batches_tracked`` counters."""
    return [
        (key, tuple(value.shape), str(value.numpy().dtype))
        for key, value in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    ]


def write_golden(name: str, model: nn.Module, out_dir: pathlib.Path, seed: int) -> dict:
    layout = state_dict_layout(model)
    own = {key: value.numpy() for key, value in model.state_dict().items()}
    constants = {key: own[key] for key, _, _ in layout if golden_weights.CONSTANTS.match(key)}
    stored = {key: golden_weights.encode_constant(value) for key, value in constants.items()}
    weights = golden_weights.rebuild_state_dict(seed, layout, stored)
    for key, value in constants.items():  # what the tests will decode is the model's own
        np.testing.assert_array_equal(weights[key], value, err_msg=key)
    load_weights(model, weights)
    rng = np.random.default_rng(golden_weights.entry_seed(seed, "input"))
    inputs = rng.standard_normal(INPUT_SHAPE, dtype=np.float32)
    logits = run_model(model, inputs)
    arrays = {"input": inputs, "logits": logits}
    arrays.update({f"constants/{key}": value for key, value in stored.items()})
    np.savez_compressed(out_dir / f"{name}.npz", **arrays)
    meta = {
        "model": name,
        **MODELS[name],
        "input_shape": list(INPUT_SHAPE),
        "logits_shape": list(logits.shape),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "mode": "eval",
        "torch": torch.__version__,
        "seed": seed,
        "input": "standard normal, np.random.default_rng(entry_seed(seed, 'input'))",
        "weights": "rebuild_state_dict(seed, state_dict, constants) of tests/golden_weights.py",
        "constants": sorted(constants),
    }
    (out_dir / f"{name}.json").write_text(format_meta(meta, layout))
    return {"max_abs_logit": float(np.abs(logits).max()), "constants": len(constants)}


def format_meta(meta: dict, layout: list[golden_weights.Entry]) -> str:
    """JSON with one state_dict entry per line, so a diff shows which entry changed."""
    head = json.dumps(meta, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps([key, list(shape), dtype]) for key, shape, dtype in layout)
    return f'{head},\n "state_dict": [\n  {rows}\n ]\n}}\n'


def check_against(name: str, model: nn.Module, archive: pathlib.Path) -> tuple[float, float]:
    """``max|logits - stored|`` with the archive's own weights and input, and the same
    relative to ``max(1, max|stored|)``."""
    with np.load(archive) as data:
        weights = {
            k.removeprefix("params/"): data[k] for k in data.files if k.startswith("params/")
        }
        inputs, stored = data["input"], data["logits"]
    missing = sorted(set(weights) ^ {key for key, _, _ in state_dict_layout(model)})
    if missing:
        raise SystemExit(f"{name}: {archive} and the model disagree on entries {missing[:5]}")
    load_weights(model, weights)
    error = float(np.abs(run_model(model, inputs) - stored).max())
    return error, error / max(1.0, float(np.abs(stored).max()))


def blind_entries(name: str, model: nn.Module, golden_dir: pathlib.Path) -> list[tuple[str, float]]:
    """Entries of ``golden_dir/<name>`` that the golden cannot see, with how far they move it.

    Each entry in turn is redrawn with the next seed; the result lists those
    that move the logits by no more than the parity tolerance,
    ``1e-4 * max(1, max|logits|)``, with that movement in tolerances.
    """
    meta = json.loads((golden_dir / f"{name}.json").read_text())
    with np.load(golden_dir / f"{name}.npz") as data:
        stored = {key.removeprefix("constants/"): data[key] for key in data.files}
        inputs, logits = data["input"], data["logits"]
    weights = golden_weights.rebuild_state_dict(meta["seed"], meta["state_dict"], stored)
    others = golden_weights.rebuild_state_dict(meta["seed"] + 1, meta["state_dict"], stored)
    load_weights(model, weights)
    tolerance = 1e-4 * max(1.0, float(np.abs(logits).max()))
    if np.abs(run_model(model, inputs) - logits).max() > tolerance:
        raise SystemExit(f"{name}: the golden file's logits are not reproduced; regenerate it.")
    state, blind = model.state_dict(), []
    for key in weights:
        if golden_weights.CONSTANTS.match(key):
            continue
        state[key].copy_(torch.from_numpy(others[key]))
        moved = float(np.abs(run_model(model, inputs) - logits).max()) / tolerance
        state[key].copy_(torch.from_numpy(weights[key]))
        if moved <= 1:
            blind.append((key, moved))
    return blind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-dir", type=pathlib.Path, required=True)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT / "tests" / "golden")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--weights-from", type=pathlib.Path, default=None)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument(
        "--sensitivity",
        action="store_true",
        help="list the entries of the golden files in --out that no parity check can see",
    )
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float32)
    failed = False
    for name in args.models:
        with authors_code(checkout_of(name, args.authors_dir)):
            model = build_model(name)
            if args.weights_from is not None:
                error, relative = check_against(name, model, args.weights_from / f"{name}.npz")
                failed |= relative > args.tolerance
                print(
                    f"{name}: max|logits - stored| = {error:.3g}, "
                    f"relative to max(1, max|stored|) {relative:.3g}",
                    flush=True,
                )
            elif args.sensitivity:
                blind = blind_entries(name, model, args.out)
                print(f"{name}: {len(blind)} entries stay within the tolerance:", flush=True)
                for key, moved in blind:
                    print(f"  {key}: {moved:.2g} x tolerance", flush=True)
            else:
                args.out.mkdir(parents=True, exist_ok=True)
                report = write_golden(name, model, args.out, args.seed)
                print(f"{name}: wrote {args.out / name}.npz/.json {report}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
