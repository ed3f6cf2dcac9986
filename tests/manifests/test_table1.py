"""Table 1's row names and order, as inspect and the report show a build's sources."""

from corral.manifests.table1 import display, table_order


def test_row_names_and_order():
    names = ["commoncrawl", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange"]
    assert [display(s) for s in names] == [
        "CommonCrawl",
        "C4",
        "Github",
        "Wikipedia",
        "Books",
        "ArXiv",
        "StackExchange",
    ]
    assert display("elsewhere") == "elsewhere"
    assert table_order(["stackexchange", "commoncrawl", "other", "another"]) == [
        "commoncrawl",
        "stackexchange",
        "other",
        "another",
    ]
