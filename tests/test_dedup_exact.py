
import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from corral.dedup.exact import ExactDedup, UniqueIds, choose, latest_first, text_md5
from corral.outcome import dropped, kept
from corral.schema import make_record


def k(key, text, ts=None, source="wikipedia"):
    return kept(make_record(source, key, text, meta={"timestamp": ts} if ts else None))


def test_choose_keeps_smallest_id_and_counts_the_rest():
    outs = choose([k("b", "same"), k("a", "same"), k("c", "same")])
    assert outs[0]["record"]["id"] == min(make_record("wikipedia", x, "t")["id"] for x in "abc")
    assert [o["reason"] for o in outs[1:]] == ["duplicate_exact", "duplicate_exact"]


def test_latest_revision_wins_for_duplicate_ids():
    old, new = k("enwiki/316", "old text", "2016-03-06T21:03:34Z"), k("enwiki/316", "new text", "2017-12-23T12:46:08Z")
    assert choose([old, new], latest_first, "duplicate_id")[0]["record"]["text"] == "new text"
    assert choose([new, old], latest_first, "duplicate_id")[0]["record"]["text"] == "new text"
    a, b = k("x", "alpha"), k("x", "beta")  # no timestamps: the larger md5 of the text, whatever the order
    want = max(["alpha", "beta"], key=lambda t: text_md5({"text": t}))
    assert choose([a, b], latest_first)[0]["record"]["text"] == choose([b, a], latest_first)[0]["record"]["text"] == want


def test_transforms_on_beam():
    outs = [k("p1", "dup"), k("p2", "dup"), k("p3", "unique"), dropped("wikipedia", "redirect"),
            k("same", "v1", "2020"), k("same", "v2", "2021")]
    with beam.Pipeline(runner=FnApiRunner()) as p:
        res = (p | beam.Create(outs) | "Ids" >> UniqueIds() | "Exact" >> ExactDedup()
               | beam.Map(lambda o: (o["status"], o["reason"], o["record"]["text"] if o["record"] else None)))
        assert_that(res, equal_to([("kept", None, "dup"), ("dropped", "duplicate_exact", None),
                                   ("kept", None, "unique"), ("dropped", "redirect", None),
                                   ("kept", None, "v2"), ("dropped", "duplicate_id", None)]))
