"""plan/targets.py: vegeta's request file formats, read into plain values; every bad file one line."""

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.plan import PlanError
from twload.plan.targets import MAX_NAMES, OTHER_TARGETS, RequestTarget, labels, parse_targets, template_pieces


def lines(text: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in text.split("\n")]


def no_files(path: str) -> bytes:
    raise FileNotFoundError(2, "No such file or directory")


def http(text: str, base: str | None = None, read_file=no_files) -> tuple[RequestTarget, ...]:
    return parse_targets(lines(text), "t.txt", "http", base, read_file)


def as_json(*objs: object) -> tuple[RequestTarget, ...]:
    return parse_targets(lines("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs)), "t.json", "json")


def test_http_format_as_vegeta_reads_it():
    bodies = {"body.json": b'{"a": 1}'}
    got = http(
        "# a comment\n"
        "GET http://127.0.0.1:8080/a\n"
        "X-Account-ID: 8675309\n"
        "X-Tag: one\n"
        "X-Tag: two\n"
        "\n\n"
        "POST http://127.0.0.1:8080/b?x=1\n"
        "# a comment among the headers\n"
        "Content-Type: application/json\n"
        "@body.json\n"
        "\n"
        "DELETE http://127.0.0.1:8080/c\n"
        "HEAD http://127.0.0.1:8080/d\n",
        read_file=bodies.__getitem__)
    assert [(t.method, t.url) for t in got] == [
        ("GET", "http://127.0.0.1:8080/a"), ("POST", "http://127.0.0.1:8080/b?x=1"),
        ("DELETE", "http://127.0.0.1:8080/c"), ("HEAD", "http://127.0.0.1:8080/d")]
    assert got[0].headers == (("X-Account-ID", "8675309"), ("X-Tag", "one"), ("X-Tag", "two"))
    assert got[1].headers == (("Content-Type", "application/json"),)
    assert got[1].body == b'{"a": 1}'
    assert got[0].body is None and got[2].headers == ()
    assert got[0].where == "t.txt:2" and got[3].where == "t.txt:14"


def test_a_request_line_after_the_body_starts_the_next_target():
    got = http("POST http://h/a\n@b\nGET http://h/b\n", read_file=lambda p: b"x")
    assert [(t.method, t.body) for t in got] == [("POST", b"x"), ("GET", None)]


def test_weight_and_name_directives():
    got = http("# weight: 3\n# name: list\nGET http://h/a\n\nGET http://h/b\n# name: second\n# weight: 2\n")
    assert (got[0].weight, got[0].name, got[0].label) == (3, "list", "list")
    assert (got[1].weight, got[1].name) == (2, "second")
    assert http("GET http://h/x\n")[0].label == "GET http://h/x"


def test_relative_path_with_a_base_url():
    assert http("GET /a\n", base="http://127.0.0.1:1/")[0].url == "/a"


def test_json_format_as_vegeta_reads_it():
    got = as_json(
        {"method": "POST", "url": "http://h:1/a", "header": {"X-Tag": ["one", "two"], "Accept": ["*/*"]},
         "body": base64.b64encode(b"\x00hello{{seq}}").decode(), "weight": 4, "name": "post", "extra": 1},
        "",
        {"method": "GET", "url": "http://h:1/b"})
    assert got[0].headers == (("X-Tag", "one"), ("X-Tag", "two"), ("Accept", "*/*"))
    assert got[0].body == b"\x00hello{{seq}}" and got[0].weight == 4 and got[0].name == "post"
    assert got[1].body is None and got[1].where == "t.json:3"


def test_template_pieces():
    assert template_pieces(b"/u/{{seq}}/{{ rand 10 }}x{{uuid}}{{worker}}", "w", "URL") == [
        b"/u/", ("seq", 0), b"/", ("rand", 10), b"x", ("uuid", 0), ("worker", 0)]
    assert template_pieces(b"plain", "w", "URL") == [b"plain"]


BAD_HTTP = [
    ("get http://h/\n", "t.txt:1: unknown method 'get'"),
    ("G3T http://h/\n", "t.txt:1: unknown method 'G3T'"),
    ("CONNECT http://h/\n", "t.txt:1: method CONNECT is not supported"),
    ("GET\n", "t.txt:1: bad target 'GET': expected 'METHOD URL'"),
    ("\n\nGET ftp://h/\n", "t.txt:3: unsupported scheme 'ftp'"),
    ("GET http:///x\n", "t.txt:1: bad URL 'http:///x': no host"),
    ("GET http://h:99999/\n", "t.txt:1: bad port in URL"),
    ("GET /a\n", "t.txt:1: bad URL '/a': a path needs a URL on the command line"),
    ("GET h/a\n", "t.txt:1: bad URL 'h/a': give a scheme"),
    ("GET http://h/\nX-Foo\n", "t.txt:2: bad header 'X-Foo': no colon"),
    ("GET http://h/\n: v\n", "t.txt:2: bad header ': v': no name"),
    ("GET http://h/\nX Y: v\n", "t.txt:2: bad header 'X Y: v': the name is not a token"),
    ("GET http://h/\nX-A:\n", "t.txt:2: bad header 'X-A:': no value"),
    ("GET http://h/\n@missing.bin\n", "t.txt:2: body file 'missing.bin': No such file or directory"),
    ("GET http://h/\n@\n", "t.txt:2: '@' without a body file"),
    ("GET http://h/\n@b\nX-A: 1\n", "t.txt:3: 'X-A: 1' after the body file"),
    ("GET http://h/{{nope}}\n", "t.txt:1: URL: unknown placeholder {{nope}}"),
    ("GET http://h/{{rand}}\n", "t.txt:1: URL: {{rand}}: give {{rand N}}"),
    ("GET http://h/{{rand 0}}\n", "t.txt:1: URL: {{rand 0}}: give {{rand N}}"),
    ("GET http://h/{{seq\n", "t.txt:1: URL: '{{' opens no placeholder"),
    ("GET http://{{seq}}/\n", "t.txt:1: bad URL 'http://{{seq}}/': placeholders go in the path"),
    ("GET http://h/\nX-Id: {{uid}}\n", "t.txt:2: header X-Id: unknown placeholder {{uid}}"),
    ("# weight: 0\nGET http://h/\n", "t.txt:1: bad weight '0'"),
    ("# weight: x\nGET http://h/\n", "t.txt:1: bad weight 'x'"),
    ("# weight: 10001\nGET http://h/\n", "t.txt:1: bad weight '10001'"),
    ("# name:\nGET http://h/\n", "t.txt:1: bad name ''"),
    ("GET http://h/\n\n# weight: 2\n", "t.txt: '# weight:' at the end names no target"),
    ("# only a comment\n\n", "t.txt: no targets"),
    ("", "t.txt: no targets"),
]


@pytest.mark.parametrize(("text", "message"), BAD_HTTP)
def test_bad_http_files_say_one_line(text, message):
    with pytest.raises(PlanError) as info:
        http(text, read_file=lambda p: b"x" if p == "b" else no_files(p))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_body_file_placeholder_is_checked():
    with pytest.raises(PlanError, match=r"^t.txt:2: body file b: unknown placeholder \{\{x\}\}"):
        http("POST http://h/\n@b\n", read_file=lambda p: b'{"id": "{{x}}"}')


def test_not_utf8():
    with pytest.raises(PlanError, match=r"^t.txt:2: not UTF-8 text$"):
        parse_targets([b"GET http://h/\n", b"X-A: \xff\n"], "t.txt")


BAD_JSON = [
    ('{"method": "GET", "url": "http://h/"', "t.json:1: bad JSON: "),
    ("[1]", "t.json:1: bad target: a JSON object is expected, not list"),
    ('{"url": "http://h/"}', "t.json:1: bad target: required method is missing"),
    ('{"method": "GET"}', "t.json:1: bad target: required url is missing"),
    ('{"method": "get", "url": "http://h/"}', "t.json:1: unknown method 'get'"),
    ('{"method": "GET", "url": "nope"}', "t.json:1: bad URL 'nope'"),
    ('{"method": "GET", "url": "http://h/", "header": {"A": "v"}}', "t.json:1: bad header 'A': a list of strings"),
    ('{"method": "GET", "url": "http://h/", "header": ["A"]}', "t.json:1: bad header: an object of lists"),
    ('{"method": "GET", "url": "http://h/", "header": {"A B": ["v"]}}', "t.json:1: bad header 'A B: v'"),
    ('{"method": "GET", "url": "http://h/", "body": "!!!"}', "t.json:1: bad body: not base64"),
    ('{"method": "GET", "url": "http://h/", "body": 5}', "t.json:1: bad body: base64 text is expected"),
    ('{"method": "GET", "url": "http://h/", "body": "e3t4fX0="}', "t.json:1: body: unknown placeholder {{x}}"),
    ('{"method": "GET", "url": "http://h/", "weight": -1}', "t.json:1: bad weight -1"),
    ('{"method": "GET", "url": "http://h/", "weight": true}', "t.json:1: bad weight True"),
    ('{"method": "GET", "url": "http://h/", "name": 3}', "t.json:1: bad name 3"),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSON)
def test_bad_json_files_say_one_line(text, message):
    with pytest.raises(PlanError) as info:
        as_json('{"method": "GET", "url": "http://h/ok"}', "", text)  # the bad one is on line 3
    assert str(info.value).startswith(message.replace("t.json:1", "t.json:3"))
    assert "\n" not in str(info.value)


def test_unknown_format():
    with pytest.raises(PlanError, match="--targets-format must be one of http, json"):
        parse_targets([], "t", "yaml")


def test_past_256_distinct_names_the_rest_count_together():
    """A vegeta file names no target: over 256 distinct URLs it still runs, the first 255 counted each
    under its own method and URL, the others together as (other targets)."""
    text = "\n\n".join(f"GET http://h/{i}" for i in range(300))
    targets = http(text)
    assert len(targets) == 300 and [t.url for t in targets] == [f"http://h/{i}" for i in range(300)]
    names = labels(targets)
    assert len(names) == MAX_NAMES and names[-1] == OTHER_TARGETS
    assert names[:3] == ("GET http://h/0", "GET http://h/1", "GET http://h/2")
    assert {t.label for t in targets[255:]} == {OTHER_TARGETS}
    assert len(labels(http("\n\n".join(f"GET http://h/{i}" for i in range(256))))) == 256  # up to 256: each its own
    assert len(http("# name: all\n" + text.replace("\n\n", "\n\n# name: all\n"))) == 300


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="GETPOS /:hxtp{}#@-Aa1\t", max_size=30), max_size=8),
       st.sampled_from(["http", "json"]))
def test_any_file_parses_or_says_one_line(raw_lines, fmt):
    try:
        got = parse_targets([line.encode() + b"\n" for line in raw_lines], "f", fmt, None, lambda p: b"")
    except PlanError as exc:
        message = str(exc)
        assert message.startswith("f:") and "\n" not in message
    else:
        assert got and all(t.method and t.url for t in got)


def test_a_request_line_with_a_spaced_placeholder_ends_the_headers():
    got = http("GET http://h/a\nX-A: 1\nGET http://h/{{rand 10}}\n")
    assert [t.url for t in got] == ["http://h/a", "http://h/{{rand 10}}"]
    assert got[0].headers == (("X-A", "1"),)
