"""`corral export`: a build's documents and tokens in the layouts other tools read."""

FORMATS = ("parquet", "jsonl", "dolma", "megatron")
