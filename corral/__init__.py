"""corral: the LLaMA-1 pre-training recipe end to end (Beam corpus build, SentencePiece BPE, FSDP2 training)."""

__version__ = "0.1.0"
