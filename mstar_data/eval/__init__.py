"""`mstar eval`: sample a policy once on held-out queries, then compare test-time selection methods on those
samples (mstar_data/eval/policy.py), with a self-select scaling curve (mstar_data/eval/plot.py)."""
