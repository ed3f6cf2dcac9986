"""SentencePiece BPE training with LLaMA's trainer spec, and tokenization into token shards as phases
on the engine."""
