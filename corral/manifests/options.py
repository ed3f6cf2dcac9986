"""Every stage option a mixture manifest may set, per source, with its default and its source.

A mixture manifest names, for each source, `weight`, `inputs` and any of the stage sections below;
an option not listed here is a configuration error (so a typo never silently falls back to a
default). Defaults follow docs/recipe/ (a page per source says each option's rule and public
source): the paper's intent first; RedPajama's choices where the paper is silent; RedPajama's
bugs fixed, each fix a named option (docs/recipe/README.md#where-the-references-disagree).

The resolved values (defaults filled in) are what the build manifest records as each stage's
settings, so shards built with different settings are never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.source_specs import BY_NAME, SOURCES


@dataclass(frozen=True)
class Option:
    """One stage option: its default, its kind, and its bounds."""

    default: Any
    kind: str  # int | float | bool | str | str_list | quantity (int or "1.4T", "256MiB")
    doc: str
    choices: tuple = ()
    nullable: bool = False
    minimum: float | None = 0  # numbers are non-negative unless an option says otherwise
    maximum: float | None = None
    item_choices: tuple = ()  # allowed items of a str_list


def _o(default, kind, doc, **kw) -> Option:
    return Option(default=default, kind=kind, doc=doc, **kw)


# The 20 Wikipedia languages of the paper (docs/recipe/wikipedia.md, LLaMA §2.1).
WIKI_LANGUAGES = (
    "bg",
    "ca",
    "cs",
    "da",
    "de",
    "en",
    "es",
    "fr",
    "hr",
    "hu",
    "it",
    "nl",
    "pl",
    "pt",
    "ro",
    "ru",
    "sl",
    "sr",
    "sv",
    "uk",
)

# docs/recipe/github.md: RedPajama github_run_filter.py extension whitelist (case-sensitive endswith).
GITHUB_EXTENSIONS = (
    ".asm",
    ".bat",
    ".cmd",
    ".c",
    ".h",
    ".cs",
    ".cpp",
    ".hpp",
    ".c++",
    ".h++",
    ".cc",
    ".hh",
    ".C",
    ".H",
    ".cmake",
    ".css",
    ".dockerfile",
    ".f90",
    ".f",
    ".f03",
    ".f08",
    ".f77",
    ".f95",
    ".for",
    ".fpp",
    ".go",
    ".hs",
    ".html",
    ".java",
    ".js",
    ".jl",
    ".lua",
    ".md",
    ".markdown",
    ".php",
    ".php3",
    ".php4",
    ".php5",
    ".phps",
    ".phpt",
    ".pl",
    ".pm",
    ".pod",
    ".perl",
    ".ps1",
    ".psd1",
    ".psm1",
    ".py",
    ".rb",
    ".rs",
    ".sql",
    ".scala",
    ".sh",
    ".bash",
    ".command",
    ".zsh",
    ".ts",
    ".tsx",
    ".tex",
    ".vb",
    "Dockerfile",
    "Makefile",
    ".xml",
    ".rst",
    ".m",
    ".smali",
)

# Stages every source has: exact and near-duplicate removal (docs/recipe/README.md#deduplication).
COMMON_STAGES: dict[str, dict[str, Option]] = {
    "exact_dedup": {
        "enabled": _o(False, "bool", "drop documents whose text hash was already seen (first kept)"),
    },
    "minhash": {
        "enabled": _o(False, "bool", "MinHash LSH near-duplicate removal"),
        "threshold": _o(0.8, "float", "target Jaccard similarity of near duplicates", maximum=1.0),
        "ngram": _o(5, "int", "word n-gram shingle size", minimum=1),
        "num_perm": _o(None, "int", "permutations; null derives it from the threshold", nullable=True, minimum=1),
        "verify": _o(True, "bool", "check candidate pairs' exact Jaccard before merging"),
    },
}

STAGES: dict[str, dict[str, dict[str, Option]]] = {
    "commoncrawl": {
        "read": {
            "format": _o(
                "wet",
                "str",
                "input records: WET conversion records, or WARC responses with HTML",
                choices=("wet", "warc"),
            ),
            "min_len": _o(300, "int", "cc_net min_len, chars of raw_content before dedup"),
        },
        "line_dedup": {
            "enabled": _o(True, "bool", "CCNet line-level dedup"),
            "hash_in_mem": _o(50, "int", "shards per hash group (cc_net hash_in_mem)", minimum=1),
            "num_shards": _o(1600, "int", "shards per dump (cc_net num_shards)", minimum=1),
        },
        "langid": {
            "model": _o(None, "str", "fastText LID model path; null = lid.176.ftz from set-up", nullable=True),
            "threshold": _o(0.5, "float", "cc_net lang_threshold (rounded score ≥ it)", maximum=1.0),
            "rounding": _o(
                2, "int", "cc_net rounds scores to this many decimals before the threshold", minimum=0, maximum=8
            ),
            "languages": _o(["en"], "str_list", "RP `-l en`; empty keeps all"),
        },
        "perplexity": {
            "sp_model": _o(None, "str", "SentencePiece model; null = trained in the DAG on Wikipedia", nullable=True),
            "lm_model": _o(None, "str", "KenLM model (.arpa/.bin); null = trained in the DAG", nullable=True),
            "lm_order": _o(5, "int", "lmplz -o 5", minimum=1, maximum=6),
            "lm_docs": _o(1_000_000, "int", "NDOC_FOR_LM Wikipedia documents", minimum=1),
            "sp_vocab_size": _o(65536, "int", "spm_train --vocab_size", minimum=1),
            "cutoffs": _o(None, "str", "cutoff.csv-format table; null = percentiles of this crawl", nullable=True),
            "percentile_head": _o(30, "int", "cc_net percentile_head", maximum=100),
            "percentile_tail": _o(60, "int", "cc_net percentile_tail", maximum=100),
            "keep_buckets": _o(
                ["head", "middle"],
                "str_list",
                "RP keeps head + middle",
                item_choices=("head", "middle", "tail", "all"),
            ),
        },
        "quality": {
            "enabled": _o(True, "bool", "Wikipedia-reference classifier"),
            "threshold": _o(0.5, "float", "LLaMA §2.1 'classified as references' (argmax); RP used 0.25", maximum=1.0),
            "positives": _o(
                None, "str", "WET/WARC of pages Wikipedia cites; null = the build's Wikipedia", nullable=True
            ),
            "min_chars": _o(1000, "int", "RP drops positives shorter than 1000 chars"),
            "max_docs": _o(300_000, "int", "RP kept 300K crawled reference pages", minimum=1),
            "epoch": _o(5, "int", "fastText supervised default epoch", minimum=1),
            "lr": _o(0.1, "float", "fastText supervised default lr"),
            "dim": _o(100, "int", "fastText supervised default dim", minimum=1),
            "word_ngrams": _o(1, "int", "fastText supervised default wordNgrams", minimum=1),
        },
        "url_dedup": {
            "enabled": _o(False, "bool", "RP exact dedup on (URL, WARC digest)"),
        },
    },
    "c4": {
        "read": {
            "format": _o(
                "c4_json",
                "str",
                "published C4 json lines, or WET to rebuild C4 from CommonCrawl",
                choices=("c4_json", "wet"),
            ),
        },
        "clean": {
            "enabled": _o(False, "bool", "run TFDS C4 cleaning (needed for WET input; published C4 is clean)"),
            "min_words_per_line": _o(5, "int", "TFDS _MIN_WORDS_PER_LINE"),
            "min_sentences": _o(3, "int", "TFDS _MIN_NUM_SENTENCES"),
            "max_word_length": _o(1000, "int", "TFDS _MAX_WORD_LENGTH"),
            "max_length": _o(190_000, "int", "TFDS is_valid_length cap, characters"),
            "end_marks": _o([".", "?", "!", '"'], "str_list", "TFDS _END_MARKS (ASCII only)"),
            "badwords": _o(None, "str", "LDNOOBW list file at commit 25e679f ", nullable=True),
            "line_dedup": _o(True, "bool", "TFDS remove_duplicate_text"),
            "lang_threshold": _o(0.99, "float", "English probability ≥ 0.99", maximum=1.0),
        },
    },
    "github": {
        "license": {
            "allowed": _o(["mit", "bsd", "apache"], "str_list", "LLaMA kept Apache, BSD, MIT"),
        },
        "clean": {
            "remove_headers": _o(True, "bool", "RP clean_copyright_comments"),
        },
        "filter": {
            "extensions": _o(list(GITHUB_EXTENSIONS), "str_list", "RP extension whitelist"),
            "max_line_length": _o(1000, "int", "RP github_run_filter.py max_line_length"),
            "max_avg_line_length": _o(100, "float", "RP avg_line_length"),
            "min_alnum_fraction": _o(0.25, "float", "RP alnum_prop", maximum=1.0),
            "min_alpha_per_token": _o(1.5, "float", "RP num_alpha / num_tokens"),
        },
    },
    "wikipedia": {
        "read": {
            "languages": _o(list(WIKI_LANGUAGES), "str_list", "the paper's 20 languages"),
            "namespaces": _o(["0"], "str_list", "main namespace only"),
        },
        "clean": {
            "strip_magic_words": _o(True, "bool", "HF-wiki v2 removes __MAGIC__ words"),
        },
    },
    "books": {
        "read": {
            "strip_gutenberg": _o(True, "bool", "keep only text between the PG START and END markers"),
        },
    },
    "arxiv": {
        "clean": {
            "resolve_inputs": _o(True, "bool", "inline \\input/\\include (RP did not)"),
            "cut_before_first_section": _o(True, "bool", "LLaMA, after Lewkowycz et al."),
            "remove_bibliography": _o(True, "bool", "LLaMA removed the bibliography"),
            "keep_appendix": _o(True, "bool", "RP cut at \\appendix; the paper did not"),
            "remove_comments": _o(True, "bool", "LLaMA removed .tex comments"),
            "expand_macros": _o(True, "bool", "inline-expand user macros"),
            "fix_paragraph_regex": _o(True, "bool", "quirk: RP's missing `|` for \\paragraph"),
        },
    },
    "stackexchange": {
        "read": {
            "top_sites": _o(28, "int", "the 28 largest sites", minimum=1),
            "score_sort": _o("numeric", "str", "quirk: RP sorted score strings", choices=("numeric", "string")),
            "include_unanswered": _o(True, "bool", "RP emits questions with no answer"),
        },
    },
}

assert set(STAGES) == set(SOURCES), "every source of corral.source_specs has its stage options here"

# Top-level sections that are not sources.
TOP_SECTIONS: dict[str, dict[str, Option]] = {
    "output": {
        "shard_max_rows": _o(100_000, "quantity", "rows per document shard", minimum=1),
        "shard_max_bytes": _o(
            256 * 1024**2, "quantity", "Arrow bytes per document shard", minimum=1, maximum=2**31 - 1
        ),
        "compression": _o("zstd", "str", "document shard compression", choices=("zstd", "lz4", "none")),
    },
    "tokenizer": {
        "vocab_size": _o(32000, "int", "LLaMA tokenizer.model vocab_size", minimum=259, maximum=65536),
        "sample_bytes": _o(None, "quantity", "text sampled for tokenizer training; null = all", nullable=True),
        "bos": _o(True, "bool", "prepend <s> (id 1) to every document"),
        "eos": _o(True, "bool", "append </s> (id 2) to every document"),
    },
}


def source_stages(source: str) -> dict[str, dict[str, Option]]:
    """All stage sections of a source: its own plus the common ones, with per-source defaults."""
    stages = {name: dict(opts) for name, opts in STAGES[source].items()}
    for stage, opts in COMMON_STAGES.items():
        merged = dict(opts)
        for key, value in BY_NAME[source].common_defaults.get(stage, {}).items():
            merged[key] = Option(**{**merged[key].__dict__, "default": value})
        stages[stage] = merged
    return stages


def defaults(options: dict[str, Option]) -> dict[str, Any]:
    return {k: (list(o.default) if isinstance(o.default, list) else o.default) for k, o in options.items()}
