"""Named ablation studies for ``experiments.sweep --study``, one file each.

Each file's docstring opens with the command that runs it on SMG. The tests'
small form of any study, on a tiny synthetic SMG (a few minutes on a CPU), is
the same command with ``--seeds=2 --smoke --workdir=/tmp/ablations/<study>``
in place of the seeds, ``--vmap_seeds``, workdir and data folder.
"""
