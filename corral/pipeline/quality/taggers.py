"""The models that tag CommonCrawl documents, loaded once per worker (lazily, never pickled).

- `LanguageId`: fastText lid.176 (docs/recipe/commoncrawl.md#language-id), predictions batched; a score near a rounding
  boundary is predicted again alone, in float64, exactly as cc_net's single call.
- `Perplexity`: SentencePiece + KenLM per language (docs/recipe/commoncrawl.md#perplexity); other languages stay null.
- `QualityScorer`: P(wiki) from the reference classifier (docs/recipe/commoncrawl.md#quality-classifier), batched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corral.pipeline.quality import ccnet_rules as rules
from corral.pipeline.quality.side_models import localize


class LanguageId:
    def __init__(self, model: str | None, rounding: int = rules.LID_ROUNDING):
        self.model_path, self.rounding, self.model = model, rounding, None

    def _load(self):
        if self.model is None:
            import fasttext

            from corral.core.model_cache import lid_model_path

            self.model = fasttext.load_model(str(lid_model_path(self.model_path)))
        return self.model

    def tag(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(lang, lang_score) of each document text."""
        if not texts:
            return []
        model = self._load()
        inputs = [rules.lid_input(t) for t in texts]
        labels, scores = model.predict(inputs, k=1)
        out = []
        for text, lab, sc in zip(inputs, labels, scores):
            if rules.near_rounding_boundary(float(sc[0]), self.rounding):
                lab, sc = model.predict(text, k=1)
            out.append(rules.lid_result(lab, sc, self.rounding))
        return out


class Perplexity:
    def __init__(self, paths: Mapping[str, Mapping[str, str]]):
        self.paths, self.loaded = dict(paths), {}

    def _models(self, lang: str):
        if lang not in self.loaded:
            import kenlm
            import sentencepiece as spm

            entry = self.paths[lang]
            sp = spm.SentencePieceProcessor(model_file=localize(entry["sp"]))
            self.loaded[lang] = (sp, kenlm.Model(localize(entry["lm"])))
        return self.loaded[lang]

    def scores(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[float | None]:
        """Each document's perplexity under its language's models (None without models): per
        language, one batched SentencePiece call on one thread (a worker is one core), then KenLM."""
        out: list[float | None] = [None] * len(texts)
        for lang in sorted({lg for lg in langs if lg in self.paths}):
            at = [i for i, lg in enumerate(langs) if lg == lang]
            sp, lm = self._models(lang)
            pieces = sp.encode([rules.normalize(texts[i]) for i in at], out_type=str, num_threads=1)
            for i, p in zip(at, pieces):
                out[i] = rules.score_pieces(p, lm)
        return out


class QualityScorer:
    def __init__(self, model_path: str | None):
        self.model_path, self.model = model_path, None

    def score(self, texts: Sequence[str]) -> list[float | None]:
        if self.model_path is None:
            return [None] * len(texts)
        if self.model is None:
            import fasttext

            self.model = fasttext.load_model(localize(self.model_path))
        out: list[Any] = []
        for text in texts:  # one call per text: fastText's batched predict splits on newlines itself
            labels, probs = self.model.predict(rules.quality_input(text), k=1)
            out.append(rules.wiki_probability(labels, probs))
        return out
