"""SentencePiece BPE training with LLaMA's trainer spec, and Beam tokenization into token shards."""
