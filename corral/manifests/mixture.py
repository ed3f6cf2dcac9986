"""Mixture manifests: the YAML a person writes to say what to build and in what proportions.

```yaml
name: llama1
target_tokens: 1.4T            # a number, or a string with K/M/B/G/T (decimal) or KiB/MiB/GiB
sources:
  commoncrawl:
    weight: 0.67               # sampling proportion; all weights sum to 1
    inputs: [gs://bucket/cc/*.warc.wet.gz]
    langid: {threshold: 0.5}   # any stage section the source declares (its `options`)
```

The sources a manifest may name, and their stage sections, are those of the catalogue it is read
with (corral.pipeline.sources.registry for a build).

Validation collects every problem and raises one ManifestError whose message names the file, the
field (dotted path) and its line: unknown sources, sections and options, wrong types, negative
numbers, weights that do not sum to 1, sources with no inputs.

Inputs are paths or globs on any Beam filesystem. `${VAR}` is expanded from the environment when a
build resolves them, and relative local paths are taken from the manifest file's folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.core.errors import UsageError
from corral.manifests.options import TOP_SECTIONS, Option, SourceOptions, defaults, source_stages

WEIGHT_SUM_TOLERANCE = 1e-6  # weights must sum to 1 within this
_TOP_KEYS = ("name", "description", "target_tokens", "seed", "sources", *TOP_SECTIONS)
_SOURCE_KEYS = ("weight", "inputs", "piece_size")
PIECE_SIZE = 64 * 2**20  # input bytes one build task reads of a big file (corral's choice: it bounds a task's memory)
# An input given as a list of files (a crawl's wet.paths.gz): the list, the prefix its relative
# lines join to (default: the list's folder), the first N files, every K-th file (a spread sample).
PATHS_LIST_KEYS = ("paths", "base", "limit", "every")
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "B": 10**9,
    "G": 10**9,
    "T": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
}


class ManifestError(UsageError):
    """A manifest is invalid; `problems` lists (field, message) pairs."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        lines = [f"{path}: {fld}: {msg}" if fld else f"{path}: {msg}" for fld, msg in problems]
        super().__init__("\n".join(lines))


def parse_quantity(value: Any) -> int:
    """An int from a number or a string like '1.4T', '200B', '256MiB'."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return int(round(value))
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m and m.group(2).upper() in _UNITS:
            return int(round(float(m.group(1)) * _UNITS[m.group(2).upper()]))
    raise ValueError(f"expected a number or a size like '1.4T' or '256MiB', got {value!r}")


@dataclass
class SourceSettings:
    name: str
    weight: float
    inputs: list[str | dict]  # paths, globs, URLs, or paths lists ({paths, base, limit, every})
    stages: dict[str, dict[str, Any]]  # stage -> option -> value, defaults filled in
    piece_size: int = PIECE_SIZE  # input bytes of one build task's piece of a big file


@dataclass
class Mixture:
    name: str
    target_tokens: int
    sources: dict[str, SourceSettings]
    path: str | None = None
    description: str = ""
    seed: int = 0
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # output, tokenizer
    sha256: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def weights(self) -> dict[str, float]:
        return {n: s.weight for n, s in self.sources.items()}

    def settings(self) -> dict[str, Any]:
        """Every resolved stage setting, as the build manifest records it (with each source's piece size)."""
        return {
            "sources": {n: s.stages for n, s in self.sources.items()},
            "piece_size": {n: s.piece_size for n, s in self.sources.items()},
            **{k: dict(v) for k, v in self.sections.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        """The mixture as the build manifest records it: its fields, each source's weight and inputs."""
        own = {k: getattr(self, k) for k in ("name", "path", "sha256", "description", "target_tokens", "seed")}
        return {**own, "sources": {n: {"weight": s.weight, "inputs": list(s.inputs)} for n, s in self.sources.items()}}

    def resolved_path(self, pattern: str, field: str) -> str:
        """A path of the manifest with ${VAR} expanded, made absolute from the manifest's folder when
        it is a relative local one."""
        missing = [v for v in re.findall(r"\$\{(\w+)\}", pattern) if v not in os.environ]
        if missing:
            raise ManifestError(
                self.path or "<mixture>", [(field, f"environment variable(s) {', '.join(missing)} not set")]
            )
        p = os.path.expandvars(pattern)
        base = Path(self.path).resolve().parent if self.path else Path.cwd()
        return p if "://" in p or os.path.isabs(p) else str(base / p)

    def resolved_inputs(self, source: str) -> list[str | dict]:
        """The source's inputs with ${VAR} expanded and relative local paths made absolute (in a
        paths list: its `paths` and `base`)."""
        resolve = self.resolved_path
        out: list[str | dict] = []
        for i, item in enumerate(self.sources[source].inputs):
            field = f"sources.{source}.inputs[{i}]"
            if isinstance(item, dict):
                out.append(
                    {
                        **item,
                        "paths": resolve(item["paths"], f"{field}.paths"),
                        **({"base": resolve(item["base"], f"{field}.base")} if item.get("base") else {}),
                    }
                )
            else:
                out.append(resolve(item, field))
        return out


# --- loading --------------------------------------------------------------------------------


def _line_map(text: str) -> dict[str, int]:
    """Dotted field path -> 1-based line, from the YAML node tree."""
    lines: dict[str, int] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}.{k.value}" if prefix else str(k.value)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = f"{prefix}[{i}]"
                lines[key] = v.start_mark.line + 1
                walk(v, key)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, "")
    return lines


def shipped_manifest(name: str) -> str:
    """manifests/NAME of this checkout (llama1.yaml, sample.yaml; corral is installed from it editable)."""
    path = Path(__file__).resolve().parents[2] / "manifests" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a shipped mixture manifest is missing from this checkout")
    return str(path)


def mixture_weights(path: str) -> dict[str, float]:
    """Each source's weight in a mixture manifest, read without checking its stage options (the
    report's Table 1 column, from manifests/llama1.yaml)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {name: float(spec["weight"]) for name, spec in data["sources"].items()}


def load_mixture(path: str | os.PathLike, sources: Sequence[SourceOptions]) -> Mixture:
    """Read and validate a mixture manifest; raise ManifestError naming the file and each bad field."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ManifestError(path, [("", f"cannot read: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise ManifestError(path, [("", f"not UTF-8 text ({e.reason} at byte {e.start})")]) from e
    return parse_mixture(text, sources, path)


def parse_mixture(text: str, sources: Sequence[SourceOptions], path: str = "<mixture>") -> Mixture:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ManifestError(path, [("", f"not valid YAML{where}: {getattr(e, 'problem', e)}")]) from e
    v = _Validator(path, _line_map(text), {s.name: s for s in sources})
    mixture = v.mixture(data)
    if v.problems:
        raise ManifestError(path, v.problems)
    mixture.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    mixture.raw = data
    return mixture


class _Validator:
    def __init__(self, path: str, lines: dict[str, int], catalogue: dict[str, SourceOptions]):
        self.path = path
        self.lines = lines
        self.catalogue = catalogue
        self.problems: list[tuple[str, str]] = []

    def bad(self, fld: str, msg: str) -> None:
        line = self.lines.get(fld)
        self.problems.append((f"{fld} (line {line})" if line else fld, msg))

    def unknown(self, where: str, keys, allowed) -> None:
        for k in keys:
            if k not in allowed:
                fld = f"{where}.{k}" if where else str(k)
                self.bad(
                    fld, f"unknown {'field' if where else 'top-level field'}; expected one of: {', '.join(allowed)}"
                )

    def mixture(self, data: Any) -> Mixture:
        if not isinstance(data, dict):
            self.bad("", "a mixture manifest must be a YAML mapping")
            return Mixture(name="", target_tokens=0, sources={})
        self.unknown("", data.keys(), _TOP_KEYS)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            self.bad("name", "required: a non-empty string")
            name = ""
        description = data.get("description", "") or ""
        if not isinstance(description, str):
            self.bad("description", "must be a string")
            description = ""
        target = 0
        if "target_tokens" not in data:
            self.bad("target_tokens", "required: the number of training tokens, e.g. 1.4T")
        else:
            try:
                target = parse_quantity(data["target_tokens"])
                if target <= 0:
                    self.bad("target_tokens", f"must be > 0, got {data['target_tokens']!r}")
            except ValueError as e:
                self.bad("target_tokens", str(e))
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            self.bad("seed", f"must be an integer ≥ 0, got {seed!r}")
            seed = 0
        sections = {}
        for sec, opts in TOP_SECTIONS.items():
            sections[sec] = self.section(sec, data.get(sec), opts)
        sources: dict[str, SourceSettings] = {}
        raw_sources = data.get("sources")
        if not isinstance(raw_sources, dict) or not raw_sources:
            self.bad("sources", f"required: a mapping of source name to its settings ({', '.join(self.catalogue)})")
        else:
            self.unknown("sources", raw_sources.keys(), list(self.catalogue))
            for sname, sdata in raw_sources.items():
                if sname in self.catalogue:
                    spec = self.source(sname, sdata)
                    if spec is not None:
                        sources[sname] = spec
            if sources and len(sources) == len(raw_sources):
                total = sum(s.weight for s in sources.values())
                if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                    self.bad("sources", f"weights must sum to 1 (±{WEIGHT_SUM_TOLERANCE:g}), they sum to {total:.9g}")
        return Mixture(
            name=name,
            target_tokens=target,
            sources=sources,
            path=self.path,
            description=description,
            seed=seed,
            sections=sections,
        )

    def source(self, sname: str, sdata: Any) -> SourceSettings | None:
        where = f"sources.{sname}"
        if not isinstance(sdata, dict):
            self.bad(where, "must be a mapping with weight, inputs and stage options")
            return None
        stage_specs = source_stages(self.catalogue[sname])
        self.unknown(where, sdata.keys(), (*_SOURCE_KEYS, *stage_specs))
        weight = 0.0
        w = sdata.get("weight")
        if w is None:
            self.bad(f"{where}.weight", "required: the sampling proportion (weights sum to 1)")
        elif isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            self.bad(f"{where}.weight", f"must be a number, got {w!r}")
        elif w < 0 or w > 1:
            self.bad(f"{where}.weight", f"must be between 0 and 1, got {w!r}")
        else:
            weight = float(w)
        inputs = sdata.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs:
            self.bad(f"{where}.inputs", "required: at least one path or glob")
            inputs = []
        elif not isinstance(inputs, list):
            self.bad(f"{where}.inputs", f"must be a list of paths or globs, got {type(inputs).__name__}")
            inputs = []
        else:
            for i, p in enumerate(inputs):
                if isinstance(p, dict):
                    self.paths_list(f"{where}.inputs[{i}]", p)
                elif not isinstance(p, str) or not p.strip():
                    self.bad(
                        f"{where}.inputs[{i}]",
                        f"must be a non-empty path, glob, URL or {{paths: LIST, base: PREFIX}}, got {p!r}",
                    )
        stages = {
            stage: self.section(f"{where}.{stage}", sdata.get(stage), opts) for stage, opts in stage_specs.items()
        }
        return SourceSettings(
            sname, weight, [p if isinstance(p, dict) else str(p) for p in inputs], stages, self.piece_size(where, sdata)
        )

    def piece_size(self, where: str, sdata: dict) -> int:
        try:
            size = parse_quantity(sdata.get("piece_size", PIECE_SIZE))
        except ValueError as e:
            self.bad(f"{where}.piece_size", str(e))
            return PIECE_SIZE
        if size < 1:
            self.bad(f"{where}.piece_size", f"must be at least 1 byte, got {sdata['piece_size']!r}")
        return max(size, 1)

    def paths_list(self, where: str, spec: dict) -> None:
        """An input named by a list of files: {paths: LIST, base: PREFIX, limit: N, every: K}."""
        self.unknown(where, spec.keys(), PATHS_LIST_KEYS)
        if not isinstance(spec.get("paths"), str) or not spec["paths"].strip():
            self.bad(f"{where}.paths", "required: the list file (a path or URL; .gz allowed), one path a line")
        if "base" in spec and (not isinstance(spec["base"], str) or not spec["base"].strip()):
            self.bad(f"{where}.base", f"must be a path or URL prefix, got {spec['base']!r}")
        for key in ("limit", "every"):
            v = spec.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                self.bad(f"{where}.{key}", f"must be a whole number ≥ 1, got {v!r}")

    def section(self, where: str, data: Any, opts: dict[str, Option]) -> dict[str, Any]:
        values = defaults(opts)
        if data is None:
            return values
        if not isinstance(data, dict):
            self.bad(where, f"must be a mapping of options ({', '.join(opts)})")
            return values
        self.unknown(where, data.keys(), tuple(opts))
        for key, raw in data.items():
            if key in opts:
                ok, value = self.value(f"{where}.{key}", raw, opts[key])
                if ok:
                    values[key] = value
        return values

    def value(self, fld: str, raw: Any, opt: Option) -> tuple[bool, Any]:
        """(valid, value) of one option's raw value; each problem is recorded under `fld`."""
        if raw is None:
            if opt.nullable:
                return True, None
            self.bad(fld, "must not be null")
            return False, None
        check = {
            "bool": self._bool,
            "int": self._number,
            "float": self._number,
            "quantity": self._number,
            "str": self._string,
            "str_list": self._string_list,
        }[opt.kind]
        return check(fld, raw, opt)

    def _fail(self, fld: str, problem: str) -> tuple[bool, Any]:
        self.bad(fld, problem)
        return False, None

    def _bool(self, fld: str, raw: Any, opt: Option) -> tuple[bool, Any]:
        return (True, raw) if isinstance(raw, bool) else self._fail(fld, f"must be true or false, got {raw!r}")

    def _number(self, fld: str, raw: Any, opt: Option) -> tuple[bool, Any]:
        kind = opt.kind
        if kind == "quantity":
            try:
                num = parse_quantity(raw)
            except ValueError as e:
                return self._fail(fld, str(e))
        elif isinstance(raw, bool) or not isinstance(raw, (int, float)) or (kind == "int" and not isinstance(raw, int)):
            return self._fail(fld, f"must be {'an integer' if kind == 'int' else 'a number'}, got {raw!r}")
        else:
            num = float(raw) if kind == "float" else raw
            if not math.isfinite(num):
                return self._fail(fld, f"must be finite, got {raw!r}")
        if opt.minimum is not None and num < opt.minimum:
            what = "negative" if opt.minimum == 0 else f"below {opt.minimum:g}"
            return self._fail(fld, f"must be ≥ {opt.minimum:g}, got {raw!r} ({what})")
        if opt.maximum is not None and num > opt.maximum:
            return self._fail(fld, f"must be ≤ {opt.maximum:g}, got {raw!r}")
        return True, num

    def _string(self, fld: str, raw: Any, opt: Option) -> tuple[bool, Any]:
        if not isinstance(raw, str):
            return self._fail(fld, f"must be a string, got {raw!r}")
        if opt.choices and raw not in opt.choices:
            return self._fail(fld, f"must be one of {', '.join(opt.choices)}, got {raw!r}")
        return True, raw

    def _string_list(self, fld: str, raw: Any, opt: Option) -> tuple[bool, Any]:
        if isinstance(raw, str) or not isinstance(raw, list):
            return self._fail(fld, f"must be a list of strings, got {raw!r}")
        ok = True
        for i, item in enumerate(raw):
            if not isinstance(item, (str, int)) or isinstance(item, bool):
                self.bad(f"{fld}[{i}]", f"must be a string, got {item!r}")
                ok = False
            elif opt.item_choices and str(item) not in opt.item_choices:
                self.bad(f"{fld}[{i}]", f"must be one of {', '.join(opt.item_choices)}, got {item!r}")
                ok = False
        return ok, [str(x) for x in raw]
