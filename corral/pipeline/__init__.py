"""The corpus build and the jobs beside it (`corral dedup`, `corral fetch`): sources, input reading,
quality signals and dedup rounds, as phases on the engine (corral.engine)."""
