"""Request files (`--targets`): vegeta's `http` and `json` formats, read into plain values (pure: the
only I/O is reading the stream given and a target's `@path` body file).

The `http` format, as vegeta's lib/targets.go (NewHTTPTargeter) reads it: lines are trimmed; blank
lines and lines starting with `#` come between targets; a target is a line `METHOD URL`, then
`Name: value` header lines (a name repeated is kept, in order), then optionally a line `@path` whose
file is the body (opened as vegeta does: relative to the working directory, not to the targets
file), which ends the target; a blank line ends it too, and so does a line that starts with an upper
case word and a space (a new request line). The `json` format (NewJSONTargeter): one object a line,
`method` and `url` required, `header` {"Name": ["v1", "v2"]}, `body` base64 (standard alphabet, as
Go encodes []byte); blank lines skipped, other keys ignored.

twload's extensions: a `# weight: N` or `# name: X` line (json: `weight`, `name` keys) gives the
target (the one whose request line follows, or the one whose headers it is among) a weight in the
order and a name in the per-target results; a URL that starts with `/` is relative to the URL given
on the command line; placeholders filled per request by the core (`TEMPLATE_HELP`).

Differences from vegeta, each a refusal with one line rather than a different request sent: a
method must be an upper case token and not CONNECT; a URL must be http:// or https:// with a host
(or a path, with a command-line URL); a header name must be a token (RFC 9110 5.1); `{{` must open
a known placeholder.

Every mistake is a PlanError whose message is one line, `file:line: what is wrong`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from twload.plan.errors import PlanError
from twload.plan.parse import split_url

FORMATS = ("http", "json")
ORDERS = ("round-robin", "random")
MAX_WEIGHT = 10_000  # a weight is how many places a target has in the order's cycle
MAX_CYCLE = 1_000_000  # the order's cycle (the weights' sum), handed to the core as an int32 array
MAX_NAMES = 256  # per-target results are kept per name (the core holds a histogram for each)
# a file with more distinct targets than that (vegeta's files name none): the first MAX_NAMES - 1 are
# counted each under its own name, the rest together under this one, so the file runs unchanged
OTHER_TARGETS = "(other targets)"

# RFC 9110 section 5.6.2: token = 1*tchar
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_METHOD = re.compile(r"^[A-Z]+$")
# vegeta's startsWithHTTPMethod is `^[A-Z]+\s`; a URL holds no white space (but a placeholder may), so a
# header such as `X Y: v` is a bad header here rather than a request line with a URL `Y: v`
_REQUEST_LINE = re.compile(r"^[A-Z]+\s+\S+$")
_PLACEHOLDER_TEXT = re.compile(r"\{\{[^{}]*\}\}")
_DIRECTIVE = re.compile(r"^#\s*(weight|name)\s*:\s*(.*)$", re.IGNORECASE)
_PLACEHOLDER = re.compile(rb"\{\{(.*?)\}\}")
_SPACE = re.compile(r"\s")  # str.isspace()'s characters (re's \s for str patterns)

TEMPLATE_HELP = "{{seq}}, {{rand N}}, {{uuid}}, {{worker}}"

# placeholder kinds: what the core fills (core.h TPL_*)
SEQ, RAND, UUID, WORKER = "seq", "rand", "uuid", "worker"
MAX_RAND = 2**63


@dataclass(frozen=True)
class RequestTarget:
    """One target as the file gives it (the command line's defaults not applied yet)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # None: the command line's --body
    weight: int = 1
    name: str | None = None
    where: str = ""  # file:line, for messages about it later

    @property
    def label(self) -> str:
        """The name it is counted under in the per-target results."""
        return self.name or f"{self.method} {self.url}"


Piece = bytes | tuple[str, int]  # a literal, or a placeholder (kind, argument)


@dataclass(frozen=True)
class Spool:
    """A request file too large to hold, streamed (engine/spool.py): its targets compiled into a file of
    records that each worker's core reads a page at a time, round-robin, to one destination."""

    path: str  # the records (a private temporary file, removed when the run's process ends)
    size: int  # its bytes
    count: int  # targets in the request file
    labels: tuple[str, ...]  # the per-target results' names, a group's index -> its name
    render_max: int  # the longest templated request (0: none templated): each slot's render buffer
    destination: str  # 'scheme://host:port/', the one every target goes to


def template_pieces(data: bytes, where: str, what: str) -> list[Piece]:
    """data taken apart into literals and placeholders; an unknown one is a PlanError."""
    pieces: list[Piece] = []
    at = 0
    for match in _PLACEHOLDER.finditer(data):
        if match.start() > at:
            pieces.append(data[at:match.start()])
        pieces.append(_placeholder(match.group(1), where, what))
        at = match.end()
    rest = data[at:]
    if b"{{" in rest:
        raise PlanError(f"{where}: {what}: '{{{{' opens no placeholder (closed by '}}}}'; known: {TEMPLATE_HELP})")
    if rest:
        pieces.append(rest)
    return pieces


def _placeholder(inner: bytes, where: str, what: str) -> tuple[str, int]:
    words = inner.decode("utf-8", "replace").split()
    shown = "{{" + inner.decode("utf-8", "replace") + "}}"
    if words and words[0] in (SEQ, UUID, WORKER) and len(words) == 1:
        return words[0], 0
    if words and words[0] == RAND:
        if len(words) != 2 or not words[1].isdigit() or not 1 <= int(words[1]) <= MAX_RAND:
            raise PlanError(f"{where}: {what}: {shown}: give {{{{rand N}}}} with N from 1 to 2^63")
        return RAND, int(words[1])
    raise PlanError(f"{where}: {what}: unknown placeholder {shown} (known: {TEMPLATE_HELP})")


def _check_method(method: str, where: str) -> str:
    if not _METHOD.match(method):
        raise PlanError(f"{where}: unknown method {method!r}: a method is an upper case word, e.g. GET")
    if method == "CONNECT":
        raise PlanError(f"{where}: method CONNECT is not supported (it opens a tunnel, not a request)")
    return method


def _check_url(url: str, where: str, base: str | None) -> str:
    if not url or _SPACE.search(_PLACEHOLDER_TEXT.sub("x", url)):
        raise PlanError(f"{where}: bad URL {url!r}")
    if url.startswith("/"):
        if base is None:
            raise PlanError(f"{where}: bad URL {url!r}: a path needs a URL on the command line to be relative to")
    else:
        try:
            split_url(url)
        except PlanError as exc:
            raise PlanError(f"{where}: {exc}") from None
        if b"{{" in urlsplit(url).netloc.encode():
            raise PlanError(f"{where}: bad URL {url!r}: placeholders go in the path or query, not the host")
    template_pieces(url.encode(), where, "URL")
    return url


def _check_header(line: str, where: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon:
        raise PlanError(f"{where}: bad header {line!r}: no colon (use 'Name: value')")
    if not name:
        raise PlanError(f"{where}: bad header {line!r}: no name before the colon")
    if not _TOKEN.match(name):
        raise PlanError(f"{where}: bad header {line!r}: the name is not a token (RFC 9110 5.6.2)")
    if not value:  # vegeta refuses it too
        raise PlanError(f"{where}: bad header {line!r}: no value")
    if any(c in value for c in "\r\n\0"):
        raise PlanError(f"{where}: bad header {line!r}: CR, LF or NUL in the value")
    template_pieces(value.encode(), where, f"header {name}")
    return name, value


def _check_weight(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PlanError(f"{where}: bad weight {value!r}: a whole number from 1 to {MAX_WEIGHT}")
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_WEIGHT:
        raise PlanError(f"{where}: bad weight {value!r}: a whole number from 1 to {MAX_WEIGHT}")
    return int(text)


def _check_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n"):
        raise PlanError(f"{where}: bad name {value!r}: give some text")
    return value.strip()


def _read_body(path: str, where: str, read_file: Callable[[str], bytes]) -> bytes:
    if not path:
        raise PlanError(f"{where}: '@' without a body file")
    try:
        body = read_file(path)
    except OSError as exc:
        raise PlanError(f"{where}: body file {path!r}: {exc.strerror or exc}") from None
    template_pieces(body, where, f"body file {path}")
    return body


def _read_path(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _lines(source: Iterable[bytes], name: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(source, 1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PlanError(f"{name}:{number}: not UTF-8 text") from None


def parse_http(source: Iterable[bytes], name: str, base: str | None = None,
               read_file: Callable[[str], bytes] = _read_path) -> list[RequestTarget]:
    """vegeta's `http` format: the targets, in the file's order."""
    targets = list(iter_http(source, name, base, read_file))
    if not targets:
        raise PlanError(f"{name}: no targets")
    return targets


def iter_http(source: Iterable[bytes], name: str, base: str | None = None,
              read_file: Callable[[str], bytes] = _read_path) -> Iterator[RequestTarget]:
    """vegeta's `http` format, a target at a time as each one ends (a line at a time is read: a file
    too large to hold is streamed, engine/spool.py)."""
    current: dict | None = None  # the target being read: its request line seen, not yet ended
    pending: dict = {}  # weight / name given before the next request line

    for number, raw in _lines(source, name):
        line = raw.strip()
        where = f"{name}:{number}"
        if not line:
            if current is not None:
                yield RequestTarget(**current)
                current = None
            continue
        if line.startswith("#"):
            directive = _DIRECTIVE.match(line)
            if directive:
                key, value = directive.group(1).lower(), directive.group(2)
                checked = _check_weight(value, where) if key == "weight" else _check_name(value, where)
                (current if current is not None else pending)[key] = checked
            continue
        if current is None or _REQUEST_LINE.match(_PLACEHOLDER_TEXT.sub("x", line)):
            if current is not None:
                yield RequestTarget(**current)
                current = None
            words = line.split(None, 1)
            if len(words) < 2:
                raise PlanError(f"{where}: bad target {line[:60]!r}: expected 'METHOD URL'")
            current = {"method": _check_method(words[0], where), "url": _check_url(words[1].strip(), where, base),
                       "headers": (), "where": where, **pending}
            pending = {}
            continue
        if current.get("body") is not None:
            raise PlanError(f"{where}: {line[:60]!r} after the body file: end the target with a blank line")
        if line.startswith("@"):
            current["body"] = _read_body(line[1:].strip(), where, read_file)
            continue
        current["headers"] = (*current["headers"], _check_header(line, where))
    if current is not None:
        yield RequestTarget(**current)
    if pending:
        raise PlanError(f"{name}: '# {next(iter(pending))}:' at the end names no target")


def parse_json(source: Iterable[bytes], name: str, base: str | None = None) -> list[RequestTarget]:
    """vegeta's `json` format: one object a line."""
    targets = list(iter_json(source, name, base))
    if not targets:
        raise PlanError(f"{name}: no targets")
    return targets


def iter_json(source: Iterable[bytes], name: str, base: str | None = None) -> Iterator[RequestTarget]:
    """vegeta's `json` format, a target a line as it is read."""
    for number, raw in _lines(source, name):
        line = raw.strip()
        if not line:
            continue
        where = f"{name}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlanError(f"{where}: bad JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(obj, dict):
            raise PlanError(f"{where}: bad target: a JSON object is expected, not {type(obj).__name__}")
        method, url = obj.get("method"), obj.get("url")
        if not isinstance(method, str) or not method:
            raise PlanError(f"{where}: bad target: required method is missing")
        if not isinstance(url, str) or not url:
            raise PlanError(f"{where}: bad target: required url is missing")
        headers: list[tuple[str, str]] = []
        header = obj.get("header") or {}
        if not isinstance(header, dict):
            raise PlanError(f"{where}: bad header: an object of lists is expected, e.g. {{\"Name\": [\"v1\", \"v2\"]}}")
        for key, values in header.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise PlanError(f"{where}: bad header {key!r}: a list of strings is expected")
            headers.extend(_check_header(f"{key}: {value}", where) for value in values)
        body = None
        if obj.get("body") is not None:
            if not isinstance(obj["body"], str):
                raise PlanError(f"{where}: bad body: base64 text is expected")
            try:
                body = base64.b64decode(obj["body"], validate=True)
            except (binascii.Error, ValueError):
                raise PlanError(f"{where}: bad body: not base64 (standard alphabet, with padding)") from None
            template_pieces(body, where, "body")
        yield RequestTarget(
            method=_check_method(method, where), url=_check_url(url, where, base), headers=tuple(headers),
            body=body, weight=_check_weight(obj["weight"], where) if "weight" in obj else 1,
            name=_check_name(obj["name"], where) if "name" in obj else None, where=where)


def labels(targets: Iterable[RequestTarget]) -> tuple[str, ...]:
    """The per-target results' names, each once, in the order they first come (a group's index)."""
    return tuple(dict.fromkeys(t.label for t in targets))


def parse_targets(source: Iterable[bytes], name: str, fmt: str = "http", base: str | None = None,
                  read_file: Callable[[str], bytes] = _read_path) -> tuple[RequestTarget, ...]:
    """A request file's targets (format `http` or `json`); checked as a whole: names, the order's size."""
    if check_format(fmt) == "http":
        return check_whole(parse_http(source, name, base, read_file), name)
    return check_whole(parse_json(source, name, base), name)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise PlanError(f"--targets-format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def iter_targets(source: Iterable[bytes], name: str, fmt: str = "http", base: str | None = None,
                 read_file: Callable[[str], bytes] = _read_path) -> Iterator[RequestTarget]:
    """A request file's targets one at a time, each checked as it ends (not the file as a whole)."""
    if check_format(fmt) == "http":
        return iter_http(source, name, base, read_file)
    return iter_json(source, name, base)


def check_whole(targets: list[RequestTarget] | tuple[RequestTarget, ...], name: str) -> tuple[RequestTarget, ...]:
    """A request file held whole, checked as a whole: the order's size; past MAX_NAMES names, the rest
    renamed OTHER_TARGETS (counted together)."""
    if sum(t.weight for t in targets) > MAX_CYCLE:
        raise PlanError(f"{name}: the weights add up to more than {MAX_CYCLE:,}")
    names = labels(targets)
    if len(names) > MAX_NAMES:
        own = set(names[:MAX_NAMES - 1])
        return tuple(t if t.label in own else replace(t, name=OTHER_TARGETS) for t in targets)
    return tuple(targets)


def split_connections(weights: tuple[int, ...] | list[int], total: int) -> list[int]:
    """A run's `total` connections split across destinations in proportion to their weights (largest
    remainders take what rounding leaves); a destination whose share rounds to none takes one from the
    largest, so each has one at least (`total` is raised to the destinations' number)."""
    n = len(weights)
    total = max(total, n)
    whole = sum(weights)
    quotas = [total * w / whole for w in weights]
    counts = [int(q) for q in quotas]
    for i in sorted(range(n), key=lambda i: quotas[i] - counts[i], reverse=True)[:total - sum(counts)]:
        counts[i] += 1
    for i in range(n):
        if counts[i] == 0:
            largest = max(range(n), key=lambda j: counts[j])
            counts[largest] -= 1
            counts[i] = 1
    return counts
