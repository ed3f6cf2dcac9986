"""Per-source readers and cleaners: pure rule functions plus a thin PTransform each."""
