"""Beam DAGs: per-source readers and cleaners, quality signals, and the build pipeline."""
