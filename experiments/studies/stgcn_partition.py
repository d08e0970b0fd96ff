"""ST-GCN's graph partition strategies (uniform, distance, spatial) with and without the learned
edge-importance masks: does the spatial partition of Yan et al. matter on SMG's micro-gestures?

    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --study=experiments/studies/stgcn_partition.py --seeds=3 --vmap_seeds \\
        --workdir=runs/ablations/stgcn_partition --config.data.manual_dir=/path/to/SMG
"""

from smg_jax.sweep import Study


def get_study() -> Study:
    return Study(
        name="ST-GCN partition strategy x edge importance",
        grid={
            "model.strategy": ["spatial", "distance", "uniform"],
            "model.edge_importance": [True, False],
        },
        description=(
            "ST-GCN's three neighbour partitions (uniform: one subset; distance: the joint and "
            "its neighbours; spatial: the joint, neighbours nearer to and farther from the body "
            "centre), each with and without the learned edge-importance masks. Baseline: the "
            "published spatial partition with edge importance."
        ),
        baseline="strategy=spatial,edge_importance=True",
    )
