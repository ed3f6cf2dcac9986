"""Deduplication: CCNet line-level, exact document/file, MinHash + LSH + connected components."""
