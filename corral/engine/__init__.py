"""The engine: phases over work items, run by the local pool or any Beam runner, with completion
records, resume, folder claims and progress. Every job (build, dedup, tokenize, export) is a graph
of phases here; the engine knows nothing of sources, documents or models."""
