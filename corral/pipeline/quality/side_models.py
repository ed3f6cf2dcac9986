"""Side models the CommonCrawl stage trains inside the build (docs/recipe/commoncrawl.md,
"Side models" and "Quality classifier").

- Perplexity: a SentencePiece unigram model and a KenLM n-gram (lmplz → build_binary) per language,
  trained on the build's Wikipedia documents of that language, normalised as cc_net normalises
  (cc_net used the `opening_text` of the first 1,000,000 CirrusSearch documents: corral uses the lead
  section — the text before the first blank line — of at most `lm_docs` articles, smallest ids first).
  spm_train flags as cc_net's Makefile: unigram, character_coverage 0.9995, hard vocabulary limit;
  when the text is too small for that vocabulary, the limit is made soft (recorded in the model info).
  lmplz: `-o <order> --discount_fallback`, memory bounded by `-S`.
- Quality: fastText supervised with its CLI defaults (RP), positives `__label__wiki` and negatives
  `__label__cc`, one thread so the model is the same on every run.

Models are written to OUT/models/ (any Beam filesystem) and described by {"path", "sha256", …};
workers that score with them copy remote files to a local cache first (`localize`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from typing import Any

from corral.core.fs import atomic_write_bytes, is_remote, read_bytes
from corral.pipeline.quality.ccnet_rules import normalize, quality_input

# fastText's supervised training raises "Encountered NaN" at random on small sets (about half the
# tries, at any learning rate): a retry passes, and with one thread the model is the same
FASTTEXT_TRIES = 20
_TRAIN_FASTTEXT = (
    "import json, sys, fasttext\nfasttext.train_supervised(**json.loads(sys.argv[1])).save_model(sys.argv[2])\n"
)
LMPLZ_MEMORY = "1G"  # lmplz -S: cc_net used 8G; lmplz spills to disk beyond it
SP_CHARACTER_COVERAGE = 0.9995  # docs/recipe/commoncrawl.md#side-models: cc_net spm_train --character_coverage
_LOCAL_CACHE: dict[str, str] = {}


class QualityTrainingFailed(RuntimeError):
    """fastText could not train the classifier; the build goes on without quality scores."""


def lead_section(text: str) -> str:
    """The text before the first blank line: the closest to CirrusSearch's `opening_text`."""
    return text.split("\n\n", 1)[0].strip()


def _publish(local: str, dest: str) -> dict[str, Any]:
    data = open(local, "rb").read()
    return {"path": dest, "sha256": atomic_write_bytes(dest, data), "bytes": len(data)}


def _train_sentencepiece(lines: list[str], vocab_size: int) -> tuple[bytes, bool]:
    """(model bytes, whether the vocabulary limit was hard) of a unigram model on `lines`. Trained
    from an iterator into memory: no temporary path is written into the model's spec, so the same
    text gives the same model bytes (and sha256) on every run."""
    import sentencepiece as spm

    def train(hard_limit: bool) -> bytes:
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=buf,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=SP_CHARACTER_COVERAGE,
            num_threads=1,
            minloglevel=2,
            hard_vocab_limit=hard_limit,
        )
        return buf.getvalue()

    try:
        return train(True), True
    except RuntimeError:  # too little text for that vocabulary: a soft limit, as spm suggests
        return train(False), False


def _train_kenlm(tokenized: str, order: int, memory: str, tmp: str, binary: str) -> None:
    """An `order`-gram KenLM model of the tokenized text file, written as a binary at `binary`."""
    from corral.core.model_cache import kenlm_tool

    arpa = binary.removesuffix(".bin")
    lmplz = [str(kenlm_tool("lmplz")), "-o", str(order), "-S", memory, "-T", tmp, "--discount_fallback"]
    with open(tokenized, "rb") as fin, open(arpa, "wb") as fout:
        subprocess.run(lmplz, stdin=fin, stdout=fout, stderr=subprocess.PIPE, check=True)
    subprocess.run([str(kenlm_tool("build_binary")), arpa, binary], capture_output=True, check=True)


def train_perplexity_models(
    lang: str, texts: Iterable[str], models_dir: str, *, vocab_size: int, order: int, memory: str = LMPLZ_MEMORY
) -> dict[str, dict[str, Any]]:
    """Train `{lang}.sp.model` and `{lang}.arpa.bin` from raw texts; return their model infos."""
    import sentencepiece as spm

    lines = [normalize(lead_section(t)) for t in texts]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ValueError(f"no Wikipedia text in language {lang!r} to train its language model on")
    with tempfile.TemporaryDirectory() as tmp:
        sp_path = os.path.join(tmp, f"{lang}.sp.model")
        model_bytes, hard = _train_sentencepiece(lines, vocab_size)
        with open(sp_path, "wb") as f:
            f.write(model_bytes)
        sp = spm.SentencePieceProcessor(model_file=sp_path)
        tokenized = os.path.join(tmp, "tokenized.txt")
        with open(tokenized, "w", encoding="utf-8") as f:
            for ln in lines:
                f.write(" ".join(sp.encode_as_pieces(ln)) + "\n")
        binary = os.path.join(tmp, f"{lang}.arpa.bin")
        _train_kenlm(tokenized, order, memory, tmp, binary)
        sp_info = _publish(sp_path, f"{models_dir.rstrip('/')}/{lang}.sp.model")
        lm_info = _publish(binary, f"{models_dir.rstrip('/')}/{lang}.arpa.bin")
    sp_info.update(
        kind="sentencepiece", language=lang, documents=len(lines), hard_vocab_limit=hard, vocab_size=vocab_size
    )
    lm_info.update(kind="kenlm", language=lang, documents=len(lines), order=order)
    return {f"{lang}.sp.model": sp_info, f"{lang}.arpa.bin": lm_info}


def train_quality_model(
    positives: list[str], negatives: list[str], models_dir: str, opts: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """fastText supervised on wiki (positive) vs crawl (negative) documents; the model's info."""
    if not positives or not negatives:
        raise ValueError(f"the quality classifier needs both classes (wiki {len(positives)}, crawl {len(negatives)})")
    with tempfile.TemporaryDirectory() as tmp:
        train = os.path.join(tmp, "train.txt")
        rows = [f"__label__wiki {quality_input(t)}" for t in positives] + [
            f"__label__cc {quality_input(t)}" for t in negatives
        ]
        rows.sort(key=lambda r: hashlib.md5(r.encode("utf-8")).hexdigest())  # mixed, deterministically
        with open(train, "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
        path = os.path.join(tmp, "quality.bin")
        params = {
            "input": train,
            "lr": opts["lr"],
            "dim": opts["dim"],
            "epoch": opts["epoch"],
            "wordNgrams": opts["word_ngrams"],
            "thread": 1,
            "verbose": 0,
            "seed": 0,
        }
        last = ""
        for _ in range(FASTTEXT_TRIES):
            # Each try in a fresh process: once fastText starts failing in a process it keeps failing
            # there, while a new process succeeds about half the time on the same input.
            res = subprocess.run(
                [sys.executable, "-c", _TRAIN_FASTTEXT, json.dumps(params), path], capture_output=True, text=True
            )
            if res.returncode == 0:
                break
            last = (res.stderr.strip().splitlines() or ["?"])[-1]
            if "NaN" not in last:
                raise QualityTrainingFailed(f"fastText training failed: {last}")
        else:
            raise QualityTrainingFailed(f"fastText kept failing ({last}) on {len(rows)} training documents")
        info = _publish(path, f"{models_dir.rstrip('/')}/quality.bin")
    info.update(kind="fasttext", positives=len(positives), negatives=len(negatives))
    return {"quality.bin": info}


def localize(path: str) -> str:
    """A local path for a model file (remote files are copied once per worker process)."""
    if not is_remote(path):
        return path
    if path not in _LOCAL_CACHE:
        fd, local = tempfile.mkstemp(suffix=os.path.basename(path))
        with os.fdopen(fd, "wb") as f:
            f.write(read_bytes(path))
        _LOCAL_CACHE[path] = local
    return _LOCAL_CACHE[path]
