"""`corral …`: one entry point. The subcommands and their arguments are the table in corral/cli.yaml; what
each runs is corral.commands.COMMANDS. Ctrl-C ends any command with one line and exit 130."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from corral.commands import COMMANDS
from corral.engine.beam_worker import quiet

# What each command has kept when Ctrl-C stops it, and how to go on.
ON_INTERRUPT = {
    "build": "finished work items are kept: run the same command again to resume",
    "dedup": "run the same command again to redo the job",
    "tokenize": "finished shards are kept: run the same command again to resume",
    "export": "finished files are kept: run the same command again to resume",
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


def _size(text: str) -> int:
    """An argparse type: a size in bytes, a number or one like 8MB or 256MiB."""
    from corral.manifests.mixture import parse_quantity

    try:
        value = parse_quantity(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1 byte")
    return value


ARGUMENT_TYPES = {"positive": POSITIVE, "nonnegative": NONNEGATIVE, "int": int, "float": float, "size": _size}


def _constants() -> dict:
    """The constants corral/cli.yaml names as "const:NAME", each written once in its own module."""
    from corral.demo import DEMO_STEPS
    from corral.export import FORMATS

    return {"EXPORT_FORMATS": FORMATS, "DEMO_STEPS": DEMO_STEPS}


def _add_arguments(command: argparse.ArgumentParser, arguments: dict, constants: dict) -> None:
    for flag, options in arguments.items():
        options = {
            key: constants[value[6:]] if isinstance(value, str) and value.startswith("const:") else value
            for key, value in options.items()
        }
        if "type" in options:
            options["type"] = ARGUMENT_TYPES[options["type"]]
        command.add_argument(flag, **options)


def _add_command(sub, name: str, spec: dict, key: str, shared: dict) -> None:
    """One subcommand of the table in corral/cli.yaml (`key` names it in COMMANDS), with its actions
    or its arguments; `shared` holds the runner flags and the constants."""
    command = sub.add_parser(name, help=spec["help"], description=spec.get("description"))
    if "actions" in spec:
        actions = command.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
        for action, action_spec in spec["actions"].items():
            _add_command(actions, action, action_spec, f"{key} {action}", shared)
        return
    _add_arguments(command, spec["arguments"], shared["constants"])
    if spec.get("runner"):
        _add_arguments(command, shared["runner"], shared["constants"])
    command.set_defaults(func=COMMANDS[key])


def parser() -> argparse.ArgumentParser:
    """The `corral` parser, its subcommands and their arguments read from corral/cli.yaml."""
    import yaml

    p = argparse.ArgumentParser(
        prog="corral",
        description="Reproduce the LLaMA-1 pre-training recipe: build, inspect and verify corpora, "
        "train a tokenizer, tokenize, and train.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: 6 ms here, not 50
    table = yaml.load((Path(__file__).parent / "cli.yaml").read_text(encoding="utf-8"), Loader=loader)
    shared = {"runner": table.pop("_runner"), "constants": _constants()}
    for name, spec in table.items():
        _add_command(sub, name, spec, name, shared)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)  # Beam's notices that do not apply to corral
    args = parser().parse_args(argv)
    if args.command == "fetch" or getattr(args, "runner", "local") != "local":
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
    import threading

    from corral.core.procs import kill_descendants

    threading.excepthook = lambda args: None  # a runner's threads see their workers go: that is not news
    logging.disable(logging.CRITICAL)
    kill_descendants()
    print(
        f"\ncorral {command}: interrupted; {ON_INTERRUPT.get(command, 'run the same command again')}", file=sys.stderr
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
