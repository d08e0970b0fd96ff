"""The window detector alone: a registry model over sliding windows, two segment decoders.

    python -m experiments.online --config=experiments/configs/online_detector.py \\
        --workdir=runs/online_detector --config.data.manual_dir=/path/to/SMG \\
        --config.detector.model.name=stgcn

Any registry model works; its constructor fields are in ``detector.model``
(changing ``detector.model.name`` keeps ST-GCN's fields, so write a variant
config that copies ``models.default_fields(name)`` for another model).
"""

from __future__ import annotations

from experiments.configs import online_base


def get_config():
    config = online_base.get_config()
    config.recognizers = ("detector",)
    return config
