"""ST-GCN with the SMG authors' own recipe (lr 0.01, steps at 5 and 10, 20 epochs, batch 64).

    python -m experiments.main --config=experiments/configs/stgcn.py --workdir=runs/stgcn \\
        --config.data.manual_dir=/path/to/SMG
"""

from experiments.configs import base


def get_config():
    config = base.get_config("stgcn")
    config.model.dropout = 0.1
    config.model.strategy = "spatial"
    config.model.edge_importance = True
    config.optimizer.lr = 0.01
    config.optimizer.weight_decay = 1e-4
    config.schedule.milestones = (5, 10)
    config.train.epochs = 20
    config.train.batch_size = 64
    config.data.preset = "authors"
    return config
