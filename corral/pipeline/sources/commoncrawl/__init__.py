"""CommonCrawl (docs/recipe/commoncrawl.md): cc_net's two passes over files, then the Wikipedia-reference
classifier. The phases, in order, each in a module of this package:

  cc-read   (first_pass) per WET (or WARC) file, or run of small ones (SMALL_FILES): read its
            records (warc), stage them, and hash every line (cc_net's `hashes` step); the file's
            distinct (line hash, document) pairs go to its key file, with the URL + digest key of
            each record
  url       (first_pass; url_dedup) one record per URL + digest, the first read   → duplicate_url_digest
  cc-lines  (first_pass) per hash group (cc_net: shard = the file's slice of num_shards, group =
            shard // hash_in_mem) and partition of the hash space: the hashes in two or more documents
  lm        (lm) per language, when no models are given: SentencePiece + KenLM on the build's Wikipedia
  cc-tag    (second_pass) per file, cc_net's `mine` step: line dedup against its group's duplicates,
            language ID, perplexity; staged again with keys, a perplexity sketch and the quality
            negatives' keys
  models    (thresholds) the bucket cutoffs (a cutoff.csv, or percentiles of the sketches) and the
            quality classifier (Wikipedia — or crawled reference pages — against a sample of the crawl)
  unique, select   one record per id, then per group of files: language, bucket and quality
            thresholds (thresholds.Thresholds), each a drop reason
Tag first, select last: every signal is a column, so a new threshold needs no rerun of the rest.
Side models are files under OUT/models handed from phase to phase; models are loaded in the tasks
of each worker, never pickled with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from corral.dedup.lines import group_of
from corral.engine.graph import Graph, Handle, Item, merged
from corral.manifests.options import Option
from corral.pipeline.inputs.streams import guarded
from corral.pipeline.rounds.decide import RoundTask
from corral.pipeline.rounds.stage import file_key
from corral.pipeline.sources.base import Piece, Source, SourcePlan, Staged, combine_small
from corral.pipeline.sources.commoncrawl.first_pass import LinesTask, ReadTask, WetItem, plan_lines, plan_url
from corral.pipeline.sources.commoncrawl.lm import LmItem, LmTask
from corral.pipeline.sources.commoncrawl.second_pass import TagTask, plan_tag
from corral.pipeline.sources.commoncrawl.thresholds import ModelsTask, Thresholds
from corral.pipeline.sources.commoncrawl.warc import SOURCE, read_warc_html, read_wet

# Input bytes of small WET files read as one task: a task's own cost (its staged files, key file and
# completion record: ~13 ms on a 2-core VM) is then ~1% of its time; a real WET file (~150 MB) is its own.
SMALL_FILES = 4 * 2**20

OPTIONS = {
    "read": {
        "format": Option(
            "wet",
            "str",
            "input records: WET conversion records, or WARC responses with HTML",
            choices=("wet", "warc"),
        ),
        "min_len": Option(300, "int", "cc_net min_len, chars of raw_content before dedup"),
    },
    "line_dedup": {
        "enabled": Option(True, "bool", "CCNet line-level dedup"),
        "hash_in_mem": Option(50, "int", "shards per hash group (cc_net hash_in_mem)", minimum=1),
        "num_shards": Option(1600, "int", "shards per dump (cc_net num_shards)", minimum=1),
    },
    "langid": {
        "model": Option(None, "str", "fastText LID model path; null = lid.176.ftz from set-up", nullable=True),
        "threshold": Option(0.5, "float", "cc_net lang_threshold (rounded score ≥ it)", maximum=1.0),
        "rounding": Option(
            2, "int", "cc_net rounds scores to this many decimals before the threshold", minimum=0, maximum=8
        ),
        "languages": Option(["en"], "str_list", "RP `-l en`; empty keeps all"),
    },
    "perplexity": {
        "sp_model": Option(None, "str", "SentencePiece model; null = trained in the build on Wikipedia", nullable=True),
        "lm_model": Option(None, "str", "KenLM model (.arpa/.bin); null = trained in the build", nullable=True),
        "lm_order": Option(5, "int", "lmplz -o 5", minimum=1, maximum=6),
        "lm_docs": Option(1_000_000, "int", "NDOC_FOR_LM Wikipedia documents", minimum=1),
        "sp_vocab_size": Option(65536, "int", "spm_train --vocab_size", minimum=1),
        "cutoffs": Option(None, "str", "cutoff.csv-format table; null = percentiles of this crawl", nullable=True),
        "percentile_head": Option(30, "int", "cc_net percentile_head", maximum=100),
        "percentile_tail": Option(60, "int", "cc_net percentile_tail", maximum=100),
        "keep_buckets": Option(
            ["head", "middle"],
            "str_list",
            "RP keeps head + middle",
            item_choices=("head", "middle", "tail", "all"),
        ),
    },
    "quality": {
        "enabled": Option(True, "bool", "Wikipedia-reference classifier"),
        "threshold": Option(0.5, "float", "LLaMA §2.1 'classified as references' (argmax); RP used 0.25", maximum=1.0),
        "positives": Option(
            None, "str", "WET/WARC of pages Wikipedia cites; null = the build's Wikipedia", nullable=True
        ),
        "min_chars": Option(1000, "int", "RP drops positives shorter than 1000 chars"),
        "max_docs": Option(300_000, "int", "RP kept 300K crawled reference pages", minimum=1),
        "epoch": Option(5, "int", "fastText supervised default epoch", minimum=1),
        "lr": Option(0.1, "float", "fastText supervised default lr"),
        "dim": Option(100, "int", "fastText supervised default dim", minimum=1),
        "word_ngrams": Option(1, "int", "fastText supervised default wordNgrams", minimum=1),
    },
    "url_dedup": {
        "enabled": Option(False, "bool", "RP exact dedup on (URL, WARC digest)"),
    },
}


class CommonCrawl(Source):
    name = SOURCE
    options = OPTIONS
    learns_from = ("wikipedia",)  # the perplexity models and the quality classifier's positives

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """One WET/WARC file's records as read (cc_net's parse; no dedup or tagging)."""
        return self.read_group(piece, 0, stages)

    def read_group(self, piece: Piece, group: int, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """`read` of each file of the piece, each record tagged with the cc_net hash group; failures
        counted."""
        reader = read_warc_html if stages["read"]["format"] == "warc" else read_wet
        for one in piece.files():
            yield from guarded(SOURCE, one.path, reader(one.path, group, stages["read"]))

    def learning(self, stages: dict[str, Any]) -> list[str]:
        """The options that make the build train side models on the source it learns from."""
        needs = []
        if not (stages["perplexity"]["sp_model"] and stages["perplexity"]["lm_model"]):
            needs.append("sources.commoncrawl.perplexity.sp_model/lm_model (null: trained on Wikipedia)")
        if stages["quality"]["enabled"] and not stages["quality"]["positives"]:
            needs.append("sources.commoncrawl.quality.enabled (the classifier's positives are Wikipedia's)")
        return needs

    def stage(self, graph: Graph, plan: SourcePlan) -> Staged:
        """cc_net's first pass, the side models and its second pass: the tagged files are staged."""
        st, out, ledger, reference = plan.stages, plan.out, plan.ledger, self.learns_from[0]
        read = graph.add("commoncrawl/cc-read", ReadTask(out, self, st), ledger, items=self._items(plan), inputs=True)
        before_tag = [read]
        if st["url_dedup"]["enabled"]:
            before_tag.append(
                graph.add("commoncrawl/url", RoundTask(out, SOURCE), ledger, plan=plan_url, earlier=[read])
            )
        if st["line_dedup"]["enabled"]:
            before_tag.append(
                graph.add("commoncrawl/cc-lines", LinesTask(out), ledger, plan=plan_lines, earlier=[read])
            )
        if not (st["perplexity"]["sp_model"] and st["perplexity"]["lm_model"]):
            items = [LmItem(f"lm-{lang}", lang) for lang in st["langid"]["languages"]]
            lm = graph.add("commoncrawl/lm", LmTask(out, st, reference), ledger, items=items, waits=plan.waits)
            before_tag.append(lm)
        earlier = [merged("commoncrawl/BeforeTag", before_tag)]
        tag = graph.add("commoncrawl/cc-tag", TagTask(out, st), ledger, plan=plan_tag, earlier=earlier)
        models = self._models(graph, plan, tag)
        return Staged(
            tag,
            phase="cc-tag",
            counted=("cc-read", "cc-tag"),
            models=("lm", "models"),
            rule=Thresholds(out, st),
            select_waits=[models],
            working=("read", "ccread-keys", "lines"),
        )

    def _items(self, plan: SourcePlan) -> list[WetItem]:
        """A task per WET file, small files of one hash group read together (up to SMALL_FILES)."""
        ld, n = plan.stages["line_dedup"], len(plan.pieces)

        def group(i: int) -> int:
            return group_of(i, n, ld["num_shards"], ld["hash_in_mem"])

        limit = min(SMALL_FILES, plan.piece_size or SMALL_FILES)
        return [
            WetItem(file_key(b), piece, b, piece.size, group=group(i))
            for b, (i, piece) in enumerate(combine_small(plan.pieces, limit, group))
        ]

    def _models(self, graph: Graph, plan: SourcePlan, tag: Handle) -> Handle:
        """The bucket cutoffs and, when enabled, the quality classifier, after the tag pass."""
        items = [Item("cutoffs")] + ([Item("quality")] if plan.stages["quality"]["enabled"] else [])
        task = ModelsTask(plan.out, plan.stages, self.learns_from[0])
        return graph.add("commoncrawl/models", task, plan.ledger, items=items, earlier=[tag], waits=plan.waits)
