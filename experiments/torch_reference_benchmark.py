"""Speed of the authors' PyTorch models, measured like ``experiments.benchmark`` measures ours.

    python experiments/torch_reference_benchmark.py --model stgcn --source ~/src/st-gcn
    python experiments/torch_reference_benchmark.py --model msg3d --source ~/src/MS-G3D \\
        --batch 16 --frames 60 --threads 2
    python experiments/torch_reference_benchmark.py --model agcn --source ~/src/2s-AGCN \\
        --device cuda --batch 64

Needs PyTorch (not a dependency of smg-jax; use a separate environment) and a
checkout of the model's repository (``--source``; nothing is downloaded):

=========  ===============================  ==========================
model      repository                       module
=========  ===============================  ==========================
stgcn      yysijie/st-gcn                   ``net.st_gcn.Model``
agcn       lshiwjx/2s-AGCN                  ``model.agcn.Model``
gcnnas     xiaoiker/GCN-NAS                 ``model.agcn3.Model``
ctrgcn     Uason-Chen/CTR-GCN               ``model.ctrgcn.Model``
shiftgcn   kchengiva/Shift-GCN              ``model.shift_gcn.Model``
msg3d      kenziyuliu/MS-G3D                ``model.msg3d.Model``
=========  ===============================  ==========================

The constructor arguments are those of the parity goldens (``tests/golden``: NTU 25-joint graph,
one body), with ST-GCN's dropout at 0.5 as in ours; ``--kwarg name=value``
changes any of them. One training step is SGD with Nesterov momentum and
weight decay on cross-entropy, as in ``experiments.benchmark``; inference is ``eval()``
under ``torch.no_grad()``. The JSON line has the same keys as ours plus
``"framework": "pytorch"``, so the two can be tabulated side by side.

``--device cuda`` runs model and batch on the GPU and synchronizes before
reading the clock; PyTorch's own defaults apply (cuDNN convolutions may use
TF32, matmuls do not).

Shift-GCN's shift is a CUDA extension upstream that has to be compiled; this
script puts a differentiable PyTorch version of the same bilinear shift in its
place (``cuda.shift.Shift``) on every device. Its speed is therefore
ours-for-theirs, not the authors' kernel: say so next to any Shift-GCN figure.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import pathlib
import statistics
import sys
import time
import types
from typing import Any


def _load_allocator() -> types.ModuleType:
    """``smg_jax.runtime.allocator`` loaded from its file.

    This script runs by path in a PyTorch environment where smg_jax (and JAX)
    may not be installed; that module needs only the standard library, while
    its package imports JAX.
    """
    path = pathlib.Path(__file__).resolve().parents[1] / "smg_jax" / "runtime" / "allocator.py"
    spec = importlib.util.spec_from_file_location("smg_jax_runtime_allocator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


allocator = _load_allocator()

SPECS: dict[str, dict[str, Any]] = {
    "stgcn": {
        "module": "net.st_gcn",
        "kwargs": {
            "in_channels": 3,
            "dropout": 0.5,  # the paper's, and our STGCN's default
            "edge_importance_weighting": True,
            "graph_args": {"layout": "ntu-rgb+d", "strategy": "spatial"},
        },
    },
    "agcn": {"module": "model.agcn", "kwargs": {}},
    "gcnnas": {"module": "model.agcn3", "kwargs": {}},
    "ctrgcn": {"module": "model.ctrgcn", "kwargs": {}},
    "shiftgcn": {"module": "model.shift_gcn", "kwargs": {}},
    "msg3d": {
        "module": "model.msg3d",
        "kwargs": {
            "num_gcn_scales": 13,
            "num_g3d_scales": 6,
            "graph": "graph.ntu_rgb_d.AdjMatrixGraph",
        },
    },
}
NTU_GRAPH = {"graph": "graph.ntu_rgb_d.Graph", "graph_args": {"labeling_mode": "spatial"}}


def parse_assignments(items: list[str], flag: str) -> dict[str, Any]:
    """``["dropout=0.0", "channels=(8, 16)"]`` -> ``{"dropout": 0.0, "channels": (8, 16)}``.

    Values are Python literals; anything else is kept as a string.
    """
    parsed = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"{flag} {item!r}: write it as name=value, e.g. {flag} dropout=0.0.")
        try:
            parsed[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed[key.strip()] = text
    return parsed


def _cpu_shift_module(torch: Any) -> types.ModuleType:
    """A ``cuda.shift`` module whose ``Shift`` is plain PyTorch (any device).

    Shift-GCN's op samples each channel's ``(T, V)`` plane at ``(t * stride +
    y_c, v + x_c)`` bilinearly, zeros outside, ``+0.5`` on ``y`` when
    ``stride > 1``, output length ``T // stride``. Here it is written with
    differentiable gathers, so autograd gives the backward pass.
    """

    class Shift(torch.nn.Module):
        def __init__(self, channel: int, stride: int, init_scale: float = 3) -> None:
            super().__init__()
            self.stride = stride
            self.xpos = torch.nn.Parameter(torch.empty(channel).uniform_(-1e-8, 1e-8))
            self.ypos = torch.nn.Parameter(torch.empty(channel).uniform_(-init_scale, init_scale))

        def forward(self, x: Any) -> Any:  # (N, C, T, V)
            n, c, t, v = x.shape
            ypos = self.ypos + (0.5 if self.stride != 1 else 0.0)
            y0, x0 = torch.floor(ypos), torch.floor(self.xpos)
            dy, dx = (ypos - y0).view(1, c, 1, 1), (self.xpos - x0).view(1, c, 1, 1)
            rows = torch.arange(t // self.stride, device=x.device).view(1, -1, 1) * self.stride
            cols = torch.arange(v, device=x.device).view(1, 1, -1)
            flat = x.reshape(n, c, t * v)

            def sample(row_offset: int, col_offset: int) -> Any:
                r = rows + y0.long().view(c, 1, 1) + row_offset
                q = cols + x0.long().view(c, 1, 1) + col_offset
                r, q = torch.broadcast_tensors(r, q)
                inside = ((r >= 0) & (r < t) & (q >= 0) & (q < v)).to(x.dtype)
                index = (r.clamp(0, t - 1) * v + q.clamp(0, v - 1)).reshape(1, c, -1)
                values = torch.gather(flat, 2, index.expand(n, -1, -1))
                return values.reshape(n, c, *r.shape[1:]) * inside

            return (
                sample(0, 0) * (1 - dy) * (1 - dx)
                + sample(0, 1) * (1 - dy) * dx
                + sample(1, 0) * dy * (1 - dx)
                + sample(1, 1) * dy * dx
            )

    module = types.ModuleType("cuda.shift")
    module.Shift = Shift
    return module


def build_model(
    name: str,
    source: pathlib.Path,
    num_classes: int,
    bodies: int,
    extra_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Any:
    """The authors' ``Model`` for ``name``, imported from the checkout at ``source``.

    ``extra_kwargs`` override the constructor arguments of ``SPECS``; the
    model is returned on ``device`` (``"cpu"`` or ``"cuda"``).
    """
    import torch

    spec = SPECS[name]
    module_file = source / (spec["module"].replace(".", "/") + ".py")
    if not module_file.exists():
        raise SystemExit(
            f"{module_file} does not exist: --source must be a checkout of the repository "
            f"that defines {spec['module']}.Model (see this script's docstring)."
        )
    sys.path.insert(0, str(source))
    if device == "cpu":
        # 2s-AGCN and GCN-NAS move their graphs with ``.cuda(x.get_device())`` in forward.
        torch.Tensor.cuda = lambda tensor, *args, **kwargs: tensor
    kwargs = dict(spec["kwargs"])
    if name == "stgcn":
        kwargs.update(num_class=num_classes)
    else:
        kwargs.update(num_class=num_classes, num_point=25, num_person=bodies)
        kwargs.setdefault("graph", NTU_GRAPH["graph"])
        if kwargs["graph"] == NTU_GRAPH["graph"]:
            kwargs.setdefault("graph_args", NTU_GRAPH["graph_args"])
    kwargs.update(extra_kwargs or {})
    if name == "shiftgcn":
        package = types.ModuleType("cuda")
        package.__path__ = []
        sys.modules["cuda"], sys.modules["cuda.shift"] = package, _cpu_shift_module(torch)
        # Upstream allocates some parameters with device='cuda' and uses the removed np.int.
        text = module_file.read_text()
        text = text.replace("np.int)", "np.int64)")
        if device == "cpu":
            text = text.replace("device='cuda'", "device='cpu'")
        module = types.ModuleType(spec["module"])
        module.__file__ = str(module_file)
        exec(compile(text, str(module_file), "exec"), module.__dict__)
    else:
        module = importlib.import_module(spec["module"])
    return module.Model(**kwargs).to(device)


def _import_torch(device: str, threads: int | None) -> types.ModuleType:
    """``torch``, checked for ``device`` and set to ``threads`` threads (if given)."""
    try:
        import torch
    except ModuleNotFoundError:
        raise SystemExit(
            f"{sys.executable} has no PyTorch: run this script (or speed_table's "
            "--torch-python) with an interpreter that has torch installed."
        ) from None

    if device not in ("cpu", "cuda"):
        raise SystemExit(f"--device {device!r}: choose cpu or cuda.")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this PyTorch sees no CUDA GPU; use --device cpu.")
    if threads:
        torch.set_num_threads(threads)
    return torch


def _times(torch: Any, model: Any, x: Any, labels: Any, device: str, steps: int,
           warmup: int) -> tuple[list[float], list[float]]:  # fmt: skip
    """Seconds of ``steps`` SGD train steps and of ``steps`` forward passes, after warm-up."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
    )

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            model(x)

    def timed(fn: Any) -> list[float]:
        for _ in range(warmup):
            fn()
        synchronize()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            synchronize()
            times.append(time.perf_counter() - start)
        return times

    model.train()
    train_times = timed(train_step)
    model.eval()
    return train_times, timed(infer)


def benchmark(
    name: str,
    source: pathlib.Path,
    *,
    batch: int,
    frames: int,
    bodies: int = 1,
    num_classes: int = 17,
    steps: int = 5,
    warmup: int = 2,
    threads: int | None = None,
    kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Times one authors' model on ``device``; returns the JSON-ready row."""
    torch = _import_torch(device, threads)
    torch.manual_seed(0)
    model = build_model(name, source, num_classes, bodies, kwargs, device)
    x = torch.randn(batch, 3, frames, 25, bodies, device=device)  # the authors' (N, C, T, V, M)
    labels = torch.randint(0, num_classes, (batch,), device=device)
    train_times, eval_times = _times(torch, model, x, labels, device, steps, warmup)
    return {
        "model": name,
        "framework": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "host_allocator": allocator.in_use(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "batch": batch,
        "frames": frames,
        "bodies": bodies,
        "dtype": "float32",
        "kwargs": kwargs or {},
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_clips_per_s": round(batch / statistics.median(train_times), 2),
        "infer_clips_per_s": round(batch / statistics.median(eval_times), 2),
        "timed_steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(SPECS))
    parser.add_argument("--source", required=True, type=pathlib.Path, help="repository checkout")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--bodies", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed calls (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--kwarg", action="append", default=[], help="constructor argument name=value (repeatable)"
    )
    args = parser.parse_args(argv)
    row = benchmark(
        args.model,
        args.source.expanduser().resolve(),
        batch=args.batch,
        frames=args.frames,
        bodies=args.bodies,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        kwargs=parse_assignments(args.kwarg, "--kwarg"),
        device=args.device,
    )
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
