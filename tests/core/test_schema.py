import json

import pytest

from corral.core.schema import (
    DOC_SCHEMA,
    SIGNALS,
    SOURCE_NAME,
    TOKEN_SCHEMA,
    RecordError,
    make_record,
    record_meta,
    records_to_batch,
    stable_id,
    validate_record,
)


def test_stable_id_is_deterministic_and_depends_on_source_and_key():
    a = stable_id("commoncrawl", "http://x.org/a sha1:ABC")
    assert a == stable_id("commoncrawl", "http://x.org/a sha1:ABC")
    assert a != stable_id("commoncrawl", "http://x.org/b sha1:ABC")
    assert a != stable_id("c4", "http://x.org/a sha1:ABC")
    assert len(a) == 32 and int(a, 16) >= 0
    assert stable_id("github", b"repo/path.py") == stable_id("github", "repo/path.py")


def test_stable_id_separates_source_and_key():
    # "c4" + "x" must not collide with a source/key split elsewhere: the separator is explicit.
    assert stable_id("c4", "\x00x") != stable_id("c4", "x")


@pytest.mark.parametrize("source,key", [("No-pe", "k"), ("c4", ""), ("c4", b"")])
def test_stable_id_rejects_bad_input(source, key):
    with pytest.raises(RecordError):
        stable_id(source, key)


def test_make_record_fills_every_schema_field():
    r = make_record(
        "wikipedia",
        "enwiki/12",
        "Text.",
        url="https://en.wikipedia.org/wiki/X",
        lang="en",
        meta={"title": "X", "pageid": 12},
        quality=0.7,
    )
    assert list(r) == DOC_SCHEMA.names
    assert r["quality"] == 0.7 and r["perplexity"] is None
    assert record_meta(r) == {"title": "X", "pageid": 12}
    validate_record(r)
    batch = records_to_batch([r])
    assert batch.schema.equals(DOC_SCHEMA) and batch.num_rows == 1
    assert json.loads(batch.column("meta")[0].as_py())["pageid"] == 12


def test_make_record_rejects_unknown_signal():
    with pytest.raises(RecordError, match="unknown signal"):
        make_record("c4", "k", "t", fancy=1)


def test_validate_record_names_the_problem():
    r = make_record("c4", "k", "t")
    with pytest.raises(RecordError, match="lacks field"):
        validate_record({k: v for k, v in r.items() if k != "text"})
    with pytest.raises(RecordError, match="unknown field"):
        validate_record({**r, "extra": 1})
    with pytest.raises(RecordError, match="'text' must be a string"):
        validate_record({**r, "text": None})
    with pytest.raises(RecordError, match="source"):
        validate_record({**r, "source": "Web!"})


def test_schema_columns():
    assert DOC_SCHEMA.names[:5] == ["id", "source", "text", "url", "lang"]
    for name in ("lang_score", "perplexity", "bucket", "quality", "dup_cluster", "dup_count"):
        assert name in SIGNALS and DOC_SCHEMA.field(name).nullable
    assert not DOC_SCHEMA.field("id").nullable
    assert DOC_SCHEMA.names[-1] == "meta"
    assert str(TOKEN_SCHEMA.field("tokens").type) == "list<item: uint16 not null>"


def test_a_source_name_is_lower_case_letters_digits_and_underscores():
    for name in ("commoncrawl", "c4", "my_source2"):
        assert SOURCE_NAME.fullmatch(name)
    for name in ("", "C4", "2c", "my-source", "a b"):
        assert not SOURCE_NAME.fullmatch(name)
        with pytest.raises(RecordError):
            stable_id(name, "key")
