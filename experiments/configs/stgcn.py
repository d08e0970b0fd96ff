"""ST-GCN with the SMG authors' own recipe (lr 0.01, steps at 5 and 10, 20 epochs, batch 64).

    python -m experiments.main --config=experiments/configs/stgcn.py --workdir=runs/stgcn \\
        --config.data.manual_dir=/path/to/SMG
"""

from experiments.configs import base


def get_config():
    config = base.recipe(
        "stgcn", lr=0.01, weight_decay=1e-4, milestones=(5, 10), epochs=20, batch_size=64
    )
    config.model.update({"dropout": 0.1, "strategy": "spatial", "edge_importance": True})
    config.data.preset = "authors"
    return config
