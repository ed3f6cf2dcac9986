"""The loader at scale: O(1) state per document, epochs that visit every window once in a new order,
held-out documents never trained on, validation read only as far as it is used."""

from pathlib import Path

import numpy as np
import pytest

from corral.core.shards import TokenShard, write_token_shard
from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, relative_shard
from corral.manifests.mixture import parse_mixture
from corral.pipeline.sources.registry import SOURCES
from corral.train.attention import lengths_of
from corral.train.data import MixtureLoader, held_out_counts


def unique_build(out: Path, shards: list[int], eos: bool = True, length=(3, 40), seed=0) -> Path:
    """One source whose document i is made of the token 100 + i only (and an EOS when `eos`)."""
    rng = np.random.default_rng(seed)
    mixture = parse_mixture("name: u\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1\n    inputs: [x]\n", SOURCES)
    entries, tokens, doc = [], 0, 0
    for k, n in enumerate(shards):
        toks = []
        for _ in range(n):
            body = [100 + doc] * int(rng.integers(*length))
            toks.append(np.array(body + ([2] if eos else []), dtype=np.uint16))
            doc += 1
        info = write_token_shard(str(out / "tokens" / "c4" / f"part-{k:05d}.arrow"), [str(i) for i in range(n)], toks)
        entries.append(relative_shard(info, str(out)))
        tokens += sum(len(t) for t in toks)
    sources = {
        "c4": SourceBuild(weight=1.0, documents=doc, funnel=Funnel(doc, doc), token_shards=entries, tokens=tokens)
    }
    BuildManifest(
        mixture=mixture.to_dict(), settings={**mixture.settings(), "tokenize": {"eos": eos}}, sources=sources
    ).save(str(out))
    return out


def test_held_out_counts_spread_over_shards_and_keep_training_documents():
    assert held_out_counts([50, 30, 20], 0.1) == [5, 3, 2]
    assert sum(held_out_counts([7, 7, 7], 0.01)) == 1  # at least one …
    assert held_out_counts([1], 0.5) == [0]  # … when there are two or more
    assert sum(held_out_counts([1, 1], 0.9)) == 1  # never all
    assert held_out_counts([10, 10], 0) == [0, 0]


@pytest.mark.parametrize("eos", [True, False])
def test_an_epoch_visits_every_window_once_in_a_new_order_and_never_a_held_out_document(tmp_path, eos):
    out = unique_build(tmp_path / "b", [40, 25, 35], eos=eos)
    loader = MixtureLoader(str(out), seq_len=31, micro_batch=1, seed=5, val_fraction=0.1)
    src = loader.sources[0]
    assert src.held_out == 10
    length, n = 32, src.windows_per_epoch(32)
    stream = src.train.read(0, src.train.total)[0]
    epochs = []
    for e in range(3):
        wins = [src.window(5, 0, e * n + j, length)[0] for j in range(n)]
        starts = []
        for w in wins:  # each window is one aligned slice of the training stream
            hits = [k for k in range(n) if np.array_equal(stream[k * length : (k + 1) * length], w)]
            assert hits
            starts.append(hits[0])
        assert sorted(starts) == list(range(n))
        epochs.append(starts)
    assert epochs[0] != epochs[1] != epochs[2]
    val = loader.validation(4)["c4"]
    held = {int(t) for t in val.inputs.ravel()} - {2}
    trained = {int(t) for t in stream} - {2}
    assert held and not held & trained
    # the held-out documents are the shards' last ones: 4 of 40, 3 of 25, 3 of 35
    assert held_out_counts([40, 25, 35], 0.1) == [4, 3, 3]
    assert held <= set(range(136, 140)) | set(range(162, 165)) | set(range(197, 200))
    if not eos:
        assert (loader.next_step(1)[0].inputs == 2).sum() >= 1  # EOS added between documents


def test_document_numbers_follow_document_boundaries(tmp_path):
    out = unique_build(tmp_path / "b", [30, 30], eos=False, length=(1, 9))
    loader = MixtureLoader(str(out), seq_len=63, micro_batch=4, seed=1, val_fraction=0)
    for b in loader.next_step(3):
        assert (np.diff(b.doc_ids, axis=1) >= 0).all()
        for row, ids in zip(np.concatenate([b.inputs, b.targets[:, -1:]], 1)[:, :-1], b.doc_ids):
            body = row != 2
            # two tokens share a document number exactly when they come from the same document
            same_doc = row[:, None] == row[None, :]
            same_id = ids[:, None] == ids[None, :]
            assert (same_doc[np.ix_(body, body)] == same_id[np.ix_(body, body)]).all()
        assert all(n.sum() == b.inputs.shape[1] for n in b.doc_lengths)


def test_a_source_shorter_than_a_window_is_read_cyclically(tmp_path):
    out = unique_build(tmp_path / "b", [3], length=(2, 4))
    loader = MixtureLoader(str(out), seq_len=63, micro_batch=2, seed=0, val_fraction=0)
    b = loader.next_step(1)[0]
    assert b.inputs.shape == (2, 63)
    assert set(np.unique(b.inputs)) <= {2, 100, 101, 102}


def _arrays(obj, seen=None):
    """Every numpy array and list reachable from the loader's own objects (not the mapped shards)."""
    seen = seen if seen is not None else set()
    if id(obj) in seen or isinstance(obj, (TokenShard, str, bytes, int, float)):
        return
    seen.add(id(obj))
    if isinstance(obj, (np.ndarray, list)):
        yield obj
    items = obj if isinstance(obj, (list, tuple)) else vars(obj).values() if hasattr(obj, "__dict__") else []
    for v in items:
        yield from _arrays(v, seen)


def test_the_loader_holds_nothing_per_document(tmp_path):
    out = unique_build(tmp_path / "b", [6000, 6000], length=(1, 3))
    loader = MixtureLoader(str(out), seq_len=64, micro_batch=2, seed=0)
    loader.next_step(4)
    loader.validation(8)
    biggest = max(len(a) for a in _arrays(loader))
    assert biggest <= 8, biggest  # O(shards) and O(sources), not 12,000 documents


def test_lengths_of_a_row_of_document_numbers():
    assert lengths_of(np.array([0, 0, 1, 1, 1])).tolist() == [2, 3]
    assert lengths_of(np.array([4, 5, 6, 6, 6])).tolist() == [1, 1, 3]


def test_the_vectorised_read_equals_window_by_window(tmp_path):
    out = unique_build(tmp_path / "b", [50, 3, 40], eos=True, length=(1, 30))
    loader = MixtureLoader(str(out), seq_len=47, micro_batch=1, seed=2, val_fraction=0.05)
    src = loader.sources[0]
    ks = list(range(3 * src.windows_per_epoch(48)))
    toks, lengths = np.zeros((len(ks), 48), np.int64), [None] * len(ks)
    src.windows(2, 0, ks, 48, toks=toks, lengths=lengths, rows=list(range(len(ks))))
    for r, k in enumerate(ks):
        t, d = src.window(2, 0, k, 48)
        assert np.array_equal(toks[r], t) and np.array_equal(lengths[r], lengths_of(d[:-1])), k


def test_a_loader_asked_for_no_document_numbers_gives_the_same_tokens(tmp_path):
    out = unique_build(tmp_path / "b", [30, 30])
    a = MixtureLoader(str(out), seq_len=31, micro_batch=2, seed=4)
    b = MixtureLoader(str(out), seq_len=31, micro_batch=2, seed=4, doc_ids=False)
    for x, y in zip(a.next_step(3), b.next_step(3)):
        assert np.array_equal(x.inputs, y.inputs) and y.doc_lengths is None
