"""Exports other tools load: one writer (mstar_data/export/writer.py) for `mstar export cot` and `export prm`."""
