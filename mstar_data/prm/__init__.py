"""The process reward model: Monte-Carlo step labels, training, step scoring, evaluation, export."""
