"""Rollouts: one path from a job spec to stored rows (plan -> requests -> completions -> rows)."""
