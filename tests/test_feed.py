
import pytest

from monitor.sources.feed import ParseError, html_to_text, parse_feed, to_utf8

from .conftest import FIXTURES, shared


def test_gb2312_without_declaration_is_read_as_chinese():
    [post] = parse_feed((FIXTURES / "gb2312_no_encoding_decl.xml").read_bytes())
    assert post.title == "不归移民漫画系列：专业工作"


def test_gbk_declared_and_utf8_declared_wrongly():
    text = '<?xml version="1.0" encoding="{}"?><rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>河道发黑发臭</title></item></channel></rss>'
    gbk = text.format("GBK").encode("gbk")
    assert parse_feed(gbk)[0].title == "河道发黑发臭"
    # Declares GB2312 but the bytes are UTF-8: the bytes win.
    lying = text.format("GB2312").encode("utf-8")
    assert parse_feed(lying)[0].title == "河道发黑发臭"
    # No declaration, charset only in the HTTP header.
    bare = text.replace('<?xml version="1.0" encoding="{}"?>', "").encode("gb18030")
    assert parse_feed(bare, "application/rss+xml; charset=gbk")[0].title == "河道发黑发臭"


def test_blank_line_before_xml_declaration():
    body = b'\n\n  <?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item><guid>a</guid><title>\xe7\x88\x86\xe7\x82\xb8</title></item></channel></rss>'
    assert to_utf8(body).startswith(b"<?xml")
    assert parse_feed(body)[0].title == "爆炸"


def test_not_a_feed_is_a_clear_error():
    with pytest.raises(ParseError) as e:
        parse_feed(b"<html><body><p>502 Bad Gateway</p></body></html> <<<")
    assert "订阅源" in str(e.value)


def test_html_to_text():
    assert html_to_text("<p>第一段<br/>第二段</p><script>x()</script>&amp;更多") == "第一段\n第二段\n&更多"
    assert html_to_text("纯文本  内容") == "纯文本 内容"


def test_dedup_key_falls_back_to_link_then_content_hash():
    body = b'<rss version="2.0"><channel><item><link>http://a/1</link><title>x</title></item><item><title>y</title><description>z</description></item></channel></rss>'
    first, second = parse_feed(body)
    assert first.external_id == "http://a/1"
    assert second.external_id.startswith("sha256:")
    assert parse_feed(body)[1].external_id == second.external_id


@pytest.mark.parametrize(
    "name, count",
    [
        ("rodel_atom_ruanyifeng.xml", 3),
        ("rodel_atom_v2ex.xml", 50),
        ("rodel_rss_meituan.xml", 10),
        ("rodel_rss_ruanyifeng.xml", 6),
        ("sh_gov_policy_rss.xml", 47),
        ("sz_gov_policy_rss.xml", 166),
        ("fetchrss_weibo_supertopic_malformed.xml", 1),
    ],
)
def test_real_feed_shapes(name, count):
    posts = parse_feed(shared(f"feeds/{name}").read_bytes())
    assert len(posts) == count
    assert all(p.external_id for p in posts)
    assert all(p.published_at is not None and p.published_at.tzinfo is not None for p in posts)
    assert all("<" not in p.title for p in posts)


def test_sz_gov_cdata_and_br_become_text():
    posts = parse_feed(shared("feeds/sz_gov_policy_rss.xml").read_bytes())
    assert posts[0].title.startswith("深圳市中小企业服务局")
    assert all("<br" not in p.body for p in posts)
    assert posts[0].published_at.utcoffset().total_seconds() == 0


def test_hostile_markup_costs_one_pass():
    # 8,000 unclosed <script> took 4 s by regular expression, and doubling the length
    # quadrupled it; a 1 MB item of them beside a normal one is now one pass of lxml's parser.
    hostile = "<script>" * 130_000
    feed = (f"<rss version='2.0'><channel><title>t</title>"
            f"<item><guid>1</guid><title>坏条目</title><description><![CDATA[{hostile}]]></description></item>"
            f"<item><guid>2</guid><title>城东河道发黑发臭</title><description><![CDATA[<p>居民反映</p><p>已<b>三天</b></p>]]></description></item>"
            f"</channel></rss>").encode()
    bad, good = parse_feed(feed, "application/rss+xml")
    assert bad.title == "坏条目" and bad.body == ""
    assert good.body == "居民反映\n已三天"
    assert html_to_text("<p>a<p>b<br>c<style>x{}</style>d</p>") == "a\nb\ncd"
    assert html_to_text("《关于印发&lt;目录指引&gt;的通知》&amp;") == "《关于印发<目录指引>的通知》&"
