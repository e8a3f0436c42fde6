"""Counters and HdrHistograms: recorded in workers, merged by the supervisor.

A worker keeps one Interval and hands it over every second as a Snapshot
(histograms encoded in the HdrHistogram wire format), so the supervisor can
merge, stream to disk, and keep what a dying worker already reported.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import gc
import threading
import zlib
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from hdrh.codec import V2_ENCODING_COOKIE_BASE, PayloadHeader, ext_header_size, get_cookie_base, payload_header_size
from hdrh.histogram import HdrHistogram
from pyhdrh import add_array
from pyhdrh import decode as decode_varints

LOWEST_US = 1
HIGHEST_US = 60_000_000  # 60 s: any longer wait is a timeout anyway
SIGNIFICANT_DIGITS = 3
# latency: from the (intended) send; connect: TCP connect; service: from the actual send (open
# loop); tls: the handshake. Appended to lists on the hot path (Interval), merged as HdrHistograms.
HISTOGRAMS = ("latency", "connect", "service", "tls")
RECORDED = ("status_codes", *HISTOGRAMS)  # what the hot path appends to lists (Interval)
PERCENTILES = (("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def free_codec_garbage() -> None:
    """Free what encoding and decoding histograms left behind; call once per second.

    hdrh (0.10) makes a ctypes array type for each payload length it encodes or decodes (c_byte * n,
    n following the highest value recorded); each is a ~4 KB reference cycle that only the cycle
    collector frees. A process that allocates few objects, as the compiled core's worker or the
    supervisor, reaches a collection rarely: measured, a keep-alive core worker's heap grew ~130 KB
    a second (4 MB in 30 s) and flat with this. They are young: collecting the young generations is
    cheap."""
    gc.collect(1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One worker's second (docs/ARCHITECTURE.md "The worker snapshot"): what it counted since its previous
    snapshot. Built by the engines (Interval.snapshot, CoreWorker.snapshot), sent over the worker's pipe
    as it is, over a Dask topic as `to_dict()` (distributed/messages.py checks it back), and added up by
    Totals.add."""

    requests: int = 0  # responses completed (answers)
    connections_opened: int = 0  # connects that completed
    bytes_in: int = 0
    bytes_out: int = 0
    status: dict[int, int] = field(default_factory=dict)  # status code -> responses
    errors: dict[str, int] = field(default_factory=dict)  # error name -> count ("Error names")
    # error name -> (connection number, seconds into the run): each name once per worker, when first counted
    first_errors: dict[str, tuple[int, float]] = field(default_factory=dict)
    max_lag_us: int = 0  # open loop: how late a request was dispatched, at most, in this second
    sums_us: dict[str, int] = field(default_factory=dict)  # histogram name -> sum of its values, for exact means
    latency: bytes = b""  # HdrHistograms, encoded (b"" when empty): HISTOGRAMS
    connect: bytes = b""
    service: bytes = b""
    tls: bytes = b""
    peer_bytes: bytes = b""  # once per worker: the first bytes (at most 64) of a response that was not HTTP
    tls_reason: str = ""  # once per worker (the core): why its first TLS handshake failed
    # a request set: each target group's counts this second (CoreWorker.target_counts), only those that counted
    targets: dict[int, dict] = field(default_factory=dict)
    # targets on several destinations: connections opened to each this second, in plan.destinations' order
    destinations: tuple[int, ...] = ()
    h2_server_max_streams: int = 0  # --http2: the server's SETTINGS_MAX_CONCURRENT_STREAMS when below --streams
    # --http2: at the snapshot, the worker's connections open (connecting or connected) and its streams in
    # flight; gauges, so a second's row adds them over the workers and the run's Totals keeps none
    h2_connections_open: int = 0
    h2_streams_open: int = 0
    # https: handshakes completed this second, and of them those that resumed a session (--tls-resume);
    # None on http://
    tls_handshakes: int | None = None
    tls_resumed: int | None = None
    # a streamed request file: pages walked again this second, the next one not loaded yet (its targets
    # got more than their share of the file's order)
    page_repeats: int = 0

    def histogram(self, name: str) -> bytes:
        """The encoded histogram `name` (one of HISTOGRAMS)."""
        return {"latency": self.latency, "connect": self.connect, "service": self.service, "tls": self.tls}[name]

    def with_errors(self, more: dict[str, int]) -> Snapshot:
        """A copy with these errors counted too (the core's ledger after its last snapshot)."""
        errors = dict(self.errors)
        for name, count in more.items():
            errors[name] = errors.get(name, 0) + count
        return replace(self, errors=errors)

    def to_dict(self) -> dict[str, Any]:
        """The snapshot's fields by name; peer_bytes and tls_reason only when there are any."""
        out: dict[str, Any] = {
            "requests": self.requests, "connections_opened": self.connections_opened,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "status": dict(self.status),
            "errors": dict(self.errors), "first_errors": {k: list(v) for k, v in self.first_errors.items()},
            "max_lag_us": self.max_lag_us, "sums_us": dict(self.sums_us),
        } | {name: self.histogram(name) for name in HISTOGRAMS}
        if self.peer_bytes:
            out["peer_bytes"] = self.peer_bytes
        if self.tls_reason:
            out["tls_reason"] = self.tls_reason
        if self.targets:
            out["targets"] = self.targets
        if self.destinations:
            out["destinations"] = list(self.destinations)
        if self.h2_server_max_streams:
            out["h2_server_max_streams"] = self.h2_server_max_streams
        if self.h2_connections_open or self.h2_streams_open:
            out["h2_connections_open"] = self.h2_connections_open
            out["h2_streams_open"] = self.h2_streams_open
        if self.tls_handshakes is not None:
            out["tls_handshakes"] = self.tls_handshakes
            out["tls_resumed"] = self.tls_resumed or 0
        if self.page_repeats:
            out["page_repeats"] = self.page_repeats
        return out


class Counts:
    """The plain counters a worker's second and a run's total share."""

    __slots__ = ("requests", "connections_opened", "bytes_in", "bytes_out", "status", "errors", "max_lag_us")

    def __init__(self) -> None:
        self.requests = 0
        self.connections_opened = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.status: Counter = Counter()
        self.errors: Counter = Counter()
        self.max_lag_us = 0  # open loop: how late the scheduler dispatched a request


class Interval(Counts):
    """What one worker saw since its last snapshot. Mutated on the hot path.

    Latencies (µs) and status codes are appended to plain lists: list.append is the
    cheapest record Python has (measured with callgrind: about a third of a dict
    increment, and HdrHistogram.record_value costs ten times that). fold() counts them
    in C with collections.Counter and empties the lists; the worker calls it ten times
    a second, so the lists never hold more than a tenth of a second of responses. The
    histogram gets each distinct value once, with its count, at the snapshot.
    """

    __slots__ = ("status_codes", "latency", "connect", "first_errors", "service", "tls", "counted", "sums_us")

    def __init__(self) -> None:
        super().__init__()
        self.status_codes: list[int] = []  # one status code per response; fold() counts them
        self.latency: list[int] = []
        self.connect: list[int] = []
        self.first_errors: dict[str, list] = {}  # name -> [connection number, seconds into the run]
        self.service: list[int] = []  # open loop: from the actual send (latency is from the intended one)
        self.tls: list[int] = []  # TLS handshake times
        self.counted: dict[str, Counter] = {name: Counter() for name in RECORDED}  # what fold() took
        self.sums_us: dict[str, int] = dict.fromkeys(HISTOGRAMS, 0)  # for exact means

    def fold(self) -> None:
        """Count what the hot path appended and empty the lists (the same list objects)."""
        for name in RECORDED:
            values = getattr(self, name)
            if values:
                self.counted[name].update(values)
                if name in self.sums_us:
                    self.sums_us[name] += sum(values)
                values.clear()

    def snapshot(self) -> Snapshot:
        self.fold()
        return Snapshot(
            requests=self.requests,
            connections_opened=self.connections_opened,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            status=dict(self.counted["status_codes"]),
            errors=dict(self.errors),
            first_errors={name: (pair[0], pair[1]) for name, pair in self.first_errors.items()},
            max_lag_us=self.max_lag_us,
            sums_us=dict(self.sums_us),
            latency=encode_counts(self.counted["latency"]),
            connect=encode_counts(self.counted["connect"]),
            service=encode_counts(self.counted["service"]),
            tls=encode_counts(self.counted["tls"]),
        )


def encode_counts(counts: dict[int, int]) -> bytes:
    """value -> count, as an encoded HdrHistogram (empty bytes when there is nothing)."""
    if not counts:
        return b""
    hist = new_histogram()
    for value, count in counts.items():
        hist.record_value(min(max(value, LOWEST_US), HIGHEST_US), count)
    return hist.encode()


class IndexCountsEncoder:
    """Encodes counts given in HdrHistogram's own index layout (new_histogram()'s counts array, which
    the compiled core records into: core.h H_LEN) with one copy into a scratch histogram's counts.
    encode_counts makes a Python call per distinct value: about 0.6 ms a histogram, each second, for
    each target of a request file."""

    def __init__(self, length: int) -> None:
        self.scratch = new_histogram()
        if self.scratch.counts_len != length:  # the core's layout must be hdrh's
            raise RuntimeError(f"a histogram layout of {length} slots != hdrh's {self.scratch.counts_len}")
        self.base = ctypes.addressof(self.scratch.counts)

    def encode(self, low: int, counts: bytes, total: int) -> bytes:
        """counts: the native int64 counts of slots [low, low + len(counts) // 8), the first and the last
        of them non-zero, and total their sum (the core's counts_span); b"" when empty, as encode_counts."""
        n = len(counts) // 8
        if not n:
            return b""
        if low < 0 or low + n > self.scratch.counts_len:
            raise ValueError(f"slots [{low}, {low + n}) outside the histogram's {self.scratch.counts_len}")
        ctypes.memmove(self.base + 8 * low, counts, 8 * n)
        try:
            self.scratch.set_internal_tacking_values(low, low + n - 1, total)
            return self.scratch.encode()
        finally:
            ctypes.memset(self.base + 8 * low, 0, 8 * n)


class SpanDecoder:
    """Adds an encoded histogram into one of new_histogram()'s layout by the span of its non-zero slots,
    through one scratch array: HdrHistogram.decode_and_add allocates a whole histogram for each one it
    decodes and adds every slot of it (about 50 us; this, about 10). The supervisor adds up each
    worker's histograms every second, one per target of a request file."""

    MAX_VARINT = 9  # bytes in a ZigZag LEB128 count, at most: bounds the inflated payload

    def __init__(self) -> None:
        self.scratch = new_histogram()
        self.base = ctypes.addressof(self.scratch.counts)
        self.length = self.scratch.counts_len

    def _span(self, encoded: bytes) -> dict | None:
        """The encoded histogram's counts into the scratch array: decode_varints' findings (its total and
        the span of its non-zero slots), or None for one of another layout (another lowest, highest or
        significant figures), left to hdrh. A malformed one raises, as hdrh's decode does, and leaves
        the scratch array clean."""
        raw = base64.b64decode(encoded)
        inflater = zlib.decompressobj()
        data = inflater.decompress(raw[ext_header_size:], payload_header_size + self.MAX_VARINT * self.length)
        if inflater.unconsumed_tail:
            raise ValueError("an encoded histogram larger than its layout allows")
        if len(data) < payload_header_size:
            raise ValueError("an encoded histogram cut short")
        header = PayloadHeader.from_buffer_copy(data)
        if (get_cookie_base(header.cookie) != V2_ENCODING_COOKIE_BASE
                or (header.lowest_trackable_value, header.highest_trackable_value, header.significant_figures)
                != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)):
            return None
        try:
            return decode_varints(data, payload_header_size, self.base, self.length, 8)
        except Exception:
            ctypes.memset(self.base, 0, 8 * self.length)  # whatever it wrote before it failed
            raise

    def add(self, hist: HdrHistogram, encoded: bytes) -> None:
        """hist += the decoded histogram. One of another layout goes through hdrh's own decode_and_add.
        A malformed one raises, as hdrh's decode does."""
        found = self._span(encoded) if hist.counts_len == self.length else None
        if found is None:
            hist.decode_and_add(encoded)
            return
        if not found["total"]:
            return
        low, high = found["min_nonzero_index"], found["max_nonzero_index"]
        offset, n = 8 * low, high - low + 1
        add_array(ctypes.addressof(hist.counts) + offset, self.base + offset, n, 8)
        ctypes.memset(self.base + offset, 0, 8 * n)
        hist.total_count += found["total"]
        hist.min_value = min(hist.min_value, hist.get_value_from_index(low))
        hist.max_value = max(hist.max_value, hist.get_highest_equivalent_value(hist.get_value_from_index(high)))

    def check(self, encoded: bytes) -> None:
        """Raises what add would raise for this encoded histogram, and adds it nowhere: a message is
        refused whole before any of it is added (distributed/messages.py)."""
        found = self._span(encoded)
        if found is None:
            HdrHistogram.decode(encoded)  # another layout: hdrh's decode says whether it is one
            return
        if found["total"]:
            low, high = found["min_nonzero_index"], found["max_nonzero_index"]
            ctypes.memset(self.base + 8 * low, 0, 8 * (high - low + 1))


_DECODERS = threading.local()  # one SpanDecoder a thread: its scratch array is written and cleared by each add


def _decoder() -> SpanDecoder:
    decoder = getattr(_DECODERS, "decoder", None)
    if decoder is None:
        decoder = _DECODERS.decoder = SpanDecoder()
    return decoder


def add_encoded(hist: HdrHistogram, encoded: bytes) -> None:
    """hist += an encoded histogram (SpanDecoder.add)."""
    _decoder().add(hist, encoded)


def check_encoded(encoded: bytes) -> None:
    """Raises ValueError (or hdrh's codec errors) unless add_encoded would take it (SpanDecoder.check)."""
    _decoder().check(encoded)


class TargetTotals:
    """A request set: one target's (one name's) merged counts (the snapshot's `targets`)."""

    __slots__ = ("requests", "status", "errors", "latency", "sum_latency_us")

    def __init__(self) -> None:
        self.requests = 0
        self.status: Counter = Counter()
        self.errors: Counter = Counter()
        self.latency = new_histogram()
        self.sum_latency_us = 0

    def add(self, part: dict) -> None:
        self.requests += part["requests"]
        self.status.update(part["status"])
        self.errors.update(part["errors"])
        self.sum_latency_us += part["sum_latency_us"]
        if part.get("latency"):
            add_encoded(self.latency, part["latency"])


class Totals(Counts):
    """Merged view over snapshots, from any number of workers."""
    latency: HdrHistogram  # one per name in HISTOGRAMS, set in __init__
    connect: HdrHistogram
    service: HdrHistogram
    tls: HdrHistogram

    __slots__ = ("first_errors", "sums_us", "peer_bytes", "tls_reason", "tls_handshakes", "tls_resumed", "targets",
                 "destinations", "h2_server_max_streams", "page_repeats", *HISTOGRAMS)

    def __init__(self) -> None:
        super().__init__()
        self.first_errors: dict[str, dict] = {}
        self.peer_bytes = b""  # the first bytes a peer sent that were not HTTP (first worker to report)
        self.tls_reason = ""  # the compiled core: why its first TLS handshake failed (first worker to report)
        self.sums_us: Counter = Counter()  # histogram name -> sum of its values, for the mean
        # the compiled core (https): handshakes completed, and of them those that resumed a session
        # (--tls-resume); None until a snapshot carries them (http://)
        self.tls_handshakes: int | None = None
        self.tls_resumed: int | None = None
        self.targets: dict[int, TargetTotals] = {}  # a request set: group index -> its counts
        self.destinations: Counter = Counter()  # several destinations: index -> connections opened to it
        self.h2_server_max_streams = 0  # HTTP/2: the smallest SETTINGS_MAX_CONCURRENT_STREAMS below --streams
        self.page_repeats = 0  # a streamed request file: pages walked again (Snapshot.page_repeats)
        for name in HISTOGRAMS:
            setattr(self, name, new_histogram())

    def add(self, snap: Snapshot, worker: int = 0, targets: bool = True) -> None:
        """snap counted in; targets=False leaves out its per-target counts (a second's row has none)."""
        self.requests += snap.requests
        self.connections_opened += snap.connections_opened
        self.bytes_in += snap.bytes_in
        self.bytes_out += snap.bytes_out
        self.status.update(snap.status)
        self.errors.update(snap.errors)
        self.sums_us.update(snap.sums_us)
        if snap.tls_handshakes is not None:
            self.tls_handshakes = (self.tls_handshakes or 0) + snap.tls_handshakes
            self.tls_resumed = (self.tls_resumed or 0) + (snap.tls_resumed or 0)
        self.page_repeats += snap.page_repeats
        for name in HISTOGRAMS:
            encoded = snap.histogram(name)
            if encoded:
                add_encoded(getattr(self, name), encoded)
        self.max_lag_us = max(self.max_lag_us, snap.max_lag_us)
        if not self.peer_bytes and snap.peer_bytes:
            self.peer_bytes = bytes(snap.peer_bytes)
        if not self.tls_reason and snap.tls_reason:
            self.tls_reason = snap.tls_reason
        capped = snap.h2_server_max_streams
        if capped and (not self.h2_server_max_streams or capped < self.h2_server_max_streams):
            self.h2_server_max_streams = capped
        for group, part in snap.targets.items() if targets else ():
            target = self.targets.get(int(group))
            if target is None:  # (not setdefault: it would make a TargetTotals, a whole histogram, each time)
                target = self.targets[int(group)] = TargetTotals()
            target.add(part)
        for index, opened in enumerate(snap.destinations):
            self.destinations[index] += opened
        for name, (connection, at_s) in snap.first_errors.items():
            known = self.first_errors.get(name)
            if known is None or at_s < known["at_s"]:
                self.first_errors[name] = {"at_s": at_s, "connection": connection, "worker": worker}

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentiles_us(hist: HdrHistogram, total_us: int | None = None) -> dict:
    """The summary's percentile block; zeros when nothing was recorded.

    The percentiles come from one pass over the counts. The mean is total_us / count
    when the sum of the values is known; HdrHistogram.get_mean_value walks every
    recorded value in Python (about 50 ms for a busy second), so it is only the
    fallback, for runs rebuilt from their samples.
    """
    count = hist.get_total_count()
    if count == 0:
        return {name: 0 for name, _ in PERCENTILES} | {"max": 0, "mean": 0.0}
    values = percentile_values(hist, [p for _, p in PERCENTILES])
    out = {name: values[p] for name, p in PERCENTILES}
    out["max"] = hist.get_max_value()
    out["mean"] = round(total_us / count if total_us is not None else hist.get_mean_value(), 1)
    return out


def counts_of(hist: HdrHistogram) -> memoryview:
    """hist's counts array as int64s, without a copy."""
    return memoryview(hist.counts).cast("B").cast("q")


def recorded_span(hist: HdrHistogram) -> tuple[int, int]:
    """The slots [low, high] that hold hist's recorded values (from its min and max: counts outside are 0)."""
    return hist.get_counts_array_index(hist.get_min_value()), hist.get_counts_array_index(hist.get_max_value())


def percentile_values(hist: HdrHistogram, percentiles: list[float]) -> dict[float, int]:
    """What hist.get_percentile_to_value_dict(percentiles) gives, from running totals made in C over the
    recorded slots: hdrh's walks every slot to the last percentile's with Python calls, about 0.5 ms a
    histogram, and a request file's summary has one a target."""
    low, high = recorded_span(hist)
    running = list(accumulate(counts_of(hist)[low:high + 1]))
    if not running or running[-1] != hist.get_total_count():  # min, max and counts disagree: hdrh's own walk
        return hist.get_percentile_to_value_dict(percentiles)
    out = {}
    for p in percentiles:
        value = hist.get_value_from_index(low + bisect_left(running, hist.get_target_count_at_percentile(p)))
        out[p] = hist.get_highest_equivalent_value(value) if p else hist.get_lowest_equivalent_value(value)
    return out


def target_rows(totals: Totals, names: tuple[str, ...]) -> list[dict]:
    """summary.json's `targets`: each target (name) in the file's order, with what it counted."""
    rows = []
    for group, name in enumerate(names):
        counts = totals.targets.get(group) or TargetTotals()
        rows.append({
            "name": name,
            "requests": counts.requests,
            "status": {str(k): v for k, v in sorted(counts.status.items())},
            "errors": dict(sorted(counts.errors.items())),
            "latency_us": percentiles_us(counts.latency, counts.sum_latency_us),
        })
    return rows


def destination_rows(names: list[str], totals: Totals, ports: list[tuple[int, int]] | None) -> list[dict]:
    """summary.json's `destinations`: each destination ('address:port', in the file's order) with the
    connections opened to it, and (`ports`: each one's (ports in use, TIME_WAIT) read at the run's end)
    the client's ports held towards it then."""
    rows = []
    for i, name in enumerate(names):
        row: dict = {"destination": name, "connections_opened": totals.destinations.get(i, 0)}
        if ports is not None:
            row["ports_in_use_at_end"], row["time_wait_at_end"] = ports[i]
        rows.append(row)
    return rows


def escaped(data: bytes) -> str:
    """Bytes from the network as one printable line: ASCII kept, the rest escaped (\\r, \\n, \\xNN)."""
    return repr(bytes(data))[2:-1]


def errno_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code:
        return errno.errorcode.get(code, f"errno_{code}")
    return type(exc).__name__
