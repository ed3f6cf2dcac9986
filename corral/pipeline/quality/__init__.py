"""Quality signals: fastText language ID, SentencePiece + KenLM perplexity, the reference classifier."""
