"""The corpus build: per-source readers and cleaners, quality signals, and the phases that run them
(on this machine, or as Beam pipelines on any Beam runner)."""
