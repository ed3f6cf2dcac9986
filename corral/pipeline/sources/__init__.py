"""Per-source readers and cleaners: pure rule functions, and each source's `read_file(path, stages)`
(one input file's outcomes) that a build task runs, or `on_beam.ReadFiles` in another Beam pipeline."""
