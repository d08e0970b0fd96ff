"""Training: state tree, optimizers and schedules from config, pure steps, checkpoints, the loop."""
