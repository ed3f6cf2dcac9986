"""The base layer: errors, filesystems, text normalisation, the document record and its outcomes, Arrow
shards, child processes, license detection and the model cache. It imports nothing of corral outside it."""
