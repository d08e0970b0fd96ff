"""Training: state tree, optimizers and schedules from config, pure steps, checkpoints, setup
factories, the engine and its tasks (classification loop, vmapped seeds)."""
