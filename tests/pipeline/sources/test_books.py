"""docs/recipe/books.md Books rules on inline cases, then the real Gutenberg books."""

import gzip
import json

import pytest
from helpers import run_read, shard_records, write_manifest

from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.sources import books

NEW = (
    "\ufeffThe Project Gutenberg eBook of X\r\n\r\nTitle: X\r\nAuthor: Y\r\nRelease date: 1999 [eBook #42]\r\n"
    "Language: Spanish\r\n\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n\r\nChapter 1\r\nBody text.\r\n\r\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\n\r\nSection 1. General Terms of Use … license\r\n"
)
OLD = (
    "Project Gutenberg's X, by Y\n\nPosting Date: 2008 [EBook #7]\nLanguage: English\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nProduced by A. Volunteer and the Online\n"
    "Distributed Proofreading Team\n\nOnce upon a time.\n\n\n\n"
    "End of Project Gutenberg's X, by Y\n\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\n\n"
    "***** This file should be named 7.txt *****\n*** START: FULL LICENSE ***\nlicense text\n"
)
OLDEST = (
    "*The Project Gutenberg Etext of X*\n...\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n"
    "The story.\n\nEnd of the Project Gutenberg Etext of X\n"
)


def test_strip_new_generation():
    body, marked = books.strip_gutenberg(books.normalise_text(NEW))
    assert marked and body == "Chapter 1\nBody text."


def test_strip_old_generation_with_closing_line():
    body, marked = books.strip_gutenberg(OLD)
    assert marked and body == "Once upon a time."


def test_strip_oldest_small_print_marker():
    body, marked = books.strip_gutenberg(OLDEST)
    assert marked and body == "The story."


def test_no_markers_keeps_the_whole_text():
    assert books.strip_gutenberg("  A Books3 novel.\n") == ("A Books3 novel.", False)


def test_header_fields():
    info = books.gutenberg_header(books.normalise_text(NEW))
    assert info == {"title": "X", "author": "Y", "language": "Spanish", "ebook": "42"}


def test_normalise_bom_and_crlf():
    assert books.normalise_text("\ufeffa\r\nb\rc") == "a\nb\nc"


def test_decode_latin1_only_when_declared():
    declared = "Character set encoding: ISO-8859-1\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nse\xf1or\n"
    assert "señor" in books.decode_book(declared.encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        books.decode_book("no declaration se\xf1or".encode("latin-1"))


def test_book_record_ids_lang_and_empty():
    o = books.book_record(NEW, "file/x.txt", True, "x.txt")
    r = o["record"]
    assert r["id"] == books.make_record("books", "gutenberg/42", "t")["id"]
    assert r["lang"] == "es" and r["url"] == "https://www.gutenberg.org/ebooks/42"
    assert (
        books.book_record(
            "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\n*** END OF THE PROJECT GUTENBERG EBOOK X ***",
            "k",
            True,
            "w",
        )["reason"]
        == "empty"
    )


def test_read_transform_txt_jsonl_and_bad_input(tmp_path):
    (tmp_path / "pg7.txt").write_text(OLD)
    with gzip.open(tmp_path / "books3.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "Novel one.", "title": "One"}) + "\n")
        f.write("{broken\n")
        f.write(json.dumps({"text": "Novel two.", "meta": {"title": "Two"}}) + "\n")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe not utf8 \x80")
    gz = gzip.compress(OLD.encode())
    (tmp_path / "pg9.txt.gz").write_bytes(gz[: len(gz) // 2])  # truncated
    outs = run_read(books.Books(), [str(p) for p in sorted(tmp_path.iterdir()) if p.suffix != ".jsonl"], tmp_path)
    kept = sorted(o["record"]["text"] for o in outs if o["status"] == "kept")
    assert kept == ["Novel one.", "Novel two.", "Once upon a time."]
    reasons = sorted(o["reason"] for o in outs if o["status"] == "error")
    assert reasons == ["bad_json_line", "invalid_utf8", "truncated_or_corrupt"]


def test_real_gutenberg_books(shared_data, tmp_path):
    m = write_manifest(tmp_path / "m.yaml", {"books": {"inputs": [str(shared_data / "books" / "*.txt")]}})
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["books"].funnel
    assert (f.input, f.kept) == (5, 5) and f.balanced()
    assert verify_build(str(tmp_path / "out")).ok
    recs = {r["url"]: r for r in shard_records(str(tmp_path / "out"), "books")}
    assert set(recs) == {f"https://www.gutenberg.org/ebooks/{n}" for n in (11, 514, 2500, 2701, 2000)}
    for r in recs.values():
        t = r["text"]
        for boilerplate in (
            "PROJECT GUTENBERG EBOOK",
            "FULL LICENSE",
            "Project Gutenberg-tm",
            "Project Gutenberg License",
            "End of Project Gutenberg",
            "End of the Project Gutenberg",
        ):
            assert boilerplate not in t, (r["url"], boilerplate)
        assert not t.startswith("Produced by") and "\r" not in t and not t.startswith("\ufeff")
    assert recs["https://www.gutenberg.org/ebooks/2000"]["lang"] == "es"
    assert recs["https://www.gutenberg.org/ebooks/11"]["text"].rstrip().endswith("THE END")


def test_pg19_and_books3_ids_never_collide(tmp_path):
    # docs/recipe/books.md quirk: RP gave both corpora ids idx + chunk*2000, so they collided and overwrote.
    (tmp_path / "pg1.txt").write_text(
        "*** START OF THE PROJECT GUTENBERG EBOOK A ***\nPG text.\n*** END OF THE PROJECT GUTENBERG EBOOK A ***"
    )
    (tmp_path / "b3.jsonl").write_text(
        json.dumps({"text": "Books3 text.", "title": "1"})
        + "\n"
        + json.dumps({"text": "Another.", "title": "2"})
        + "\n"
    )
    outs = run_read(books.Books(), [str(tmp_path / "pg1.txt"), str(tmp_path / "b3.jsonl")], tmp_path)
    ids = [o["record"]["id"] for o in outs if o["status"] == "kept"]
    assert len(ids) == 3 and len(set(ids)) == 3
