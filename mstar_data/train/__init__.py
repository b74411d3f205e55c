"""Training: the Trainer and its recipe (trainer.py), losses as modules (losses.py), where each method starts
and how long its LR schedule runs (schedule.py), rank slicing (ranks.py), batches and checkpoints."""
