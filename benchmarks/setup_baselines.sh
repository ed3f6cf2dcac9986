#!/usr/bin/env bash
# Install the baselines the benchmarks compare against into benchmarks/.baselines (a --target
# folder the benchmarks put on sys.path), never into corral's own environment.
#  - cc_net 1.0.0: only an sdist exists, and pip ≥ 24 refuses its metadata (a direct-URL kenlm
#    requirement), so a throwaway venv with pip<24 downloads it and the `cc_net` package is unpacked
#    as is. Its `fasttext` requirement is never installed (it would overwrite fasttext-numpy2): its
#    code runs on the environment's kenlm 0.3.0 and fasttext-numpy2. The modules it imports are
#    installed with --no-deps.
#  - FastWARC (benchmarks/warc_readers.py); rensa, datatrove and spaCy (benchmarks/minhash.py).
set -euo pipefail
cd "$(dirname "$0")/.."
target=benchmarks/.baselines
if [ -d "$target/cc_net" ] && [ -d "$target/fastwarc" ] && [ -d "$target/datatrove" ] && [ -d "$target/spacy" ]; then
    echo "baselines present in $target"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q 'pip<24'
"$work/venv/bin/python" -m pip download -q --no-deps --no-binary :all: cc-net==1.0.0 -d "$work"
rm -rf "$target"
mkdir -p "$target"
tar -xzf "$work"/cc_net-1.0.0.tar.gz -C "$work"
cp -r "$work/cc_net-1.0.0/cc_net" "$target/"
.venv/bin/python -m pip install -q --no-deps --target "$target" \
    func_argparse psutil sacremoses submitit cloudpickle pandas python-dateutil pytz tzdata joblib click tqdm
#  - FastWARC, the second WARC library benchmarks/warc_readers.py compares with warcio.
#  - rensa and datatrove's MinHash signature code (benchmarks/minhash.py): datatrove without its
#    dependencies but the few its minhash module imports, and spaCy (its English word tokenizer).
.venv/bin/python -m pip install -q --no-deps --target "$target" fastwarc rensa datatrove huggingface_hub httpx2 \
    httpcore2 truststore h11 loguru humanize tokenizers
.venv/bin/python -m pip install -q --target "$target/spacy-env" spacy
cp -rn "$target/spacy-env/"* "$target/" && rm -rf "$target/spacy-env"
echo "baselines installed in $target"
