"""html_text: a post's text from lxml's parse events equals BeautifulSoup's (the reference), on
tricky markup and on every post of the real samples."""

import threading

import pytest

from corral.pipeline.sources import html_text as ht
from corral.pipeline.sources import stackexchange as se

TRICKY = [
    "<p>a</p>\n\n<p>b</p>",  # whitespace between blocks: one string, collapsed to "\n"
    "<p>a</p> \t <p>b</p>",  # … to " " when it holds no newline
    "<p>a\u00a0</p>\u00a0\n<p>b</p>",  # a no-break space is not ASCII whitespace: kept
    "<pre><code>x = 1\n\n\n    y = 2\n</code></pre>",
    "<pre>  </pre> <pre>\n\n</pre>",  # whitespace-only strings kept inside <pre>
    "<textarea>\n\n  </textarea>\n\n<p>t</p>",
    "<ol><li>one</li><li>two<ul><li>nested</li><li>x<br>y</li></ul></li></ol>",
    "<ul>\n<li><p>loose</p>\n</li>\n<li><p>items</p></li>\n</ul>",
    "<li>no list<li>second",  # unclosed items
    "a<br>b<br/>c</br>d",  # a stray </br>
    "<p>a<p>b<div>c</p>d",  # implied closes, a stray </p>
    "</li></ul>text</ol>",  # end tags with nothing open
    "<blockquote><p>q</p><blockquote>deep</blockquote></blockquote>after",
    "<h1>H</h1><h2>I</h2><h3>J</h3><h6>K</h6>x",
    "<table><tr><td>a</td><td>b</td></tr><tr><td>c<br>d</td></tr></table>e",
    "&lt;p&gt; &amp;amp; &nbsp;&#160;&#x27;&copy; &bogus; &amp",
    "<script>var a = '<p>';</script><style>p {}</style>shown",
    "<template><li>t</li><p>u</p></template>v",  # strings hidden, the marks of its <li>/<p> not
    "<ruby>漢<rp>(</rp><rt>kan</rt><rp>)</rp></ruby>",
    "a<!-- c -->\n\n<!-- d -->b",  # a comment ends a string: "\n\n" alone collapses
    "<!DOCTYPE html><html><head><title>T</title></head><body>x</body></html>",
    "<?php echo 1; ?>y",
    "<![CDATA[x<y]]>z",
    "\ufeff<p>bom</p>",
    "<P CLASS='x'>upper</P><BR>case",
    "<svg><text>s</text></svg><math><mi>m</mi></math>",
    "x\r\ny\rz\x0c<p>\x0c</p>",
    "<p>\x00nul</p>&#0;",
    "<noscript><p>ns</p></noscript><xmp><b></xmp><plaintext><p>rest",
    "<select><option>a<option>b</select><dl><dt>t<dd>d</dl>",
    "<a href='x'>link</a> <img src='y' alt='z'> <hr> <b> bold </b> ",
    "<frameset><li>f",
    "<",
    "a < b > c & d",
]


@pytest.mark.parametrize("html", TRICKY)
def test_post_text_equals_the_soup(html):
    assert ht.post_text(html) == ht.soup_text(html)


def test_post_text_rules_by_hand():
    """What the equality above checks, written out, so that a change to both paths is seen."""
    assert ht.post_text("<p>a</p>\n\n<p>b</p>") == "a\n\nb\n"  # "\n" after each <p>; the "\n\n" between → "\n"
    assert ht.post_text("<ul><li>a</li><li>b<br>c</li></ul>") == "\n* a\n* b\nc\n"
    assert ht.post_text("<pre>  x\n\n</pre><script>s</script>") == "  x\n\n\n"
    assert ht.post_text("a<!-- c -->  b") == "a  b"


def test_clean_html_on_tricky_markup():
    assert se.clean_html("<ol><li>one</li><li>two</li></ol>\n\n\n<p>after</p>") == "* one\n* two\n\nafter"


def test_markup_lxml_refuses_goes_through_the_soup():
    class Refusing:
        def feed(self, data):
            raise ValueError("refused")

    ht.post_text("<p>first</p>")  # this thread's parser and its target
    ht._LOCAL.parser = Refusing()
    assert ht.post_text("<p>x</p>") == ht.soup_text("<p>x</p>") == "x\n"
    assert ht._LOCAL.parser is None  # the next post gets a fresh parser
    assert ht.post_text("<li>y") == "\n* y"
    with pytest.raises(UnicodeEncodeError):  # what BeautifulSoup raises, post_text raises
        ht.post_text("\ud800<p>x</p>")
    assert ht.post_text("<p>z</p>") == "z\n"


def test_each_thread_has_its_own_parser():
    posts = [f"<ul><li>{i}</li></ul><pre> {i}\n\n</pre>" for i in range(300)]
    want = [ht.soup_text(p) for p in posts]
    got: dict[int, list[str]] = {}

    def run(k):
        got[k] = [ht.post_text(p) for p in posts]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[k] == want for k in range(4))


def test_every_real_post_body_gives_the_same_text(shared_data):
    bodies = []
    for path in sorted((shared_data / "stackexchange").glob("*-Posts.xml")):
        with open(path, "rb") as f:
            bodies += [row.get("Title", "") + " " + row.get("Body", "") for row in se.iter_rows(f)]
    assert len(bodies) > 3000
    assert [ht.post_text(b) for b in bodies] == [ht.soup_text(b) for b in bodies]
