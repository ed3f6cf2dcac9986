#!/usr/bin/env bash
# Usage: scripts/same_shards.sh REV [DIR]
#
# Builds the embedded sample (`corral sample`, manifests/sample.yaml) with corral at git revision REV
# and with the working tree, on the local pool (2 workers), on Beam's FnApiRunner (--runner direct,
# 2 workers) and on a Dask LocalCluster (2 workers), then compares the sha256 of every document shard.
# Prints one line per runner; exits 1 when any differs. For a change that must not change what a
# build writes (a refactor). Needs the set-up's .venv; REV is checked out as a git worktree in DIR.
set -euo pipefail
rev=${1:?give a git revision, e.g. HEAD~1}
dir=${2:-$(mktemp -d)}
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
git -C "$root" worktree add --detach "$dir/then" "$rev" >/dev/null 2>&1
trap 'git -C "$root" worktree remove --force "$dir/then" >/dev/null 2>&1 || true' EXIT
"$py" -m corral.cli sample "$dir/sample" >/dev/null
export CORRAL_SAMPLE="$dir/sample"

build() {  # build TREE OUT FLAGS...: corral as that tree has it (PYTHONPATH comes before the venv's)
    local tree=$1 out=$2
    shift 2
    (cd "$tree" && PYTHONPATH="$tree" "$py" -m corral.cli build manifests/sample.yaml --out "$out" "$@" >"$out.log" 2>&1)
}

hashes() { (cd "$1" && find docs -name '*.arrow' | sort | xargs sha256sum); }

status=0
for flags in "--workers 2" "--runner direct --workers 2" "--runner dask --dask-local 2"; do
    name=$(echo "$flags" | tr -d ' -')
    # shellcheck disable=SC2086
    build "$dir/then" "$dir/then-$name" $flags
    # shellcheck disable=SC2086
    build "$root" "$dir/now-$name" $flags
    if diff <(hashes "$dir/then-$name") <(hashes "$dir/now-$name") >/dev/null; then
        echo "same shards ($flags): $(hashes "$dir/now-$name" | wc -l) document shards"
    else
        echo "DIFFERENT shards ($flags): see $dir/then-$name and $dir/now-$name"
        status=1
    fi
done
exit $status
