"""Training-set builders: a sql/ view over rollouts, pinned to a version, turned into training examples."""
