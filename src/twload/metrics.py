"""Counters and HdrHistograms: recorded in workers, merged by the supervisor.

A worker keeps one Interval and hands it over every second as a plain dict
(histograms encoded in the HdrHistogram wire format), so the supervisor can
merge, stream to disk, and keep what a dying worker already reported.
"""

from __future__ import annotations

import errno
import gc
from collections import Counter

from hdrh.histogram import HdrHistogram

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

    def snapshot(self) -> dict:
        self.fold()
        return {
            "requests": self.requests,
            "connections_opened": self.connections_opened,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "status": dict(self.counted["status_codes"]),
            "errors": dict(self.errors),
            "first_errors": self.first_errors,
            "max_lag_us": self.max_lag_us,
            "sums_us": dict(self.sums_us),
        } | {name: encode_counts(self.counted[name]) for name in HISTOGRAMS}


def encode_counts(counts: dict[int, int]) -> bytes:
    """value -> count, as an encoded HdrHistogram (empty bytes when there is nothing)."""
    if not counts:
        return b""
    hist = new_histogram()
    for value, count in counts.items():
        hist.record_value(min(max(value, LOWEST_US), HIGHEST_US), count)
    return hist.encode()


class Totals(Counts):
    """Merged view over snapshots, from any number of workers."""
    latency: HdrHistogram  # one per name in HISTOGRAMS, set in __init__
    connect: HdrHistogram
    service: HdrHistogram
    tls: HdrHistogram

    __slots__ = ("first_errors", "sums_us", "peer_bytes", "tls_reason", "tls_handshakes", "tls_resumed", *HISTOGRAMS)

    def __init__(self) -> None:
        super().__init__()
        self.first_errors: dict[str, dict] = {}
        self.peer_bytes = b""  # the first bytes a peer sent that were not HTTP (first worker to report)
        self.tls_reason = ""  # the compiled core: why its first TLS handshake failed (first worker to report)
        self.sums_us: Counter = Counter()  # histogram name -> sum of its values, for the mean
        # the compiled core (https): handshakes completed, and of them those that resumed a session
        # (--tls-resume); None until a snapshot carries them (http://, asyncio)
        self.tls_handshakes: int | None = None
        self.tls_resumed: int | None = None
        for name in HISTOGRAMS:
            setattr(self, name, new_histogram())

    def add(self, snap: dict, worker: int = 0) -> None:
        self.requests += snap["requests"]
        self.connections_opened += snap["connections_opened"]
        self.bytes_in += snap["bytes_in"]
        self.bytes_out += snap["bytes_out"]
        self.status.update(snap["status"])
        self.errors.update(snap["errors"])
        self.sums_us.update(snap.get("sums_us", {}))
        if "tls_handshakes" in snap:
            self.tls_handshakes = (self.tls_handshakes or 0) + snap["tls_handshakes"]
            self.tls_resumed = (self.tls_resumed or 0) + snap.get("tls_resumed", 0)
        for name in HISTOGRAMS:
            if snap.get(name):
                getattr(self, name).decode_and_add(snap[name])
        self.max_lag_us = max(self.max_lag_us, snap.get("max_lag_us", 0))
        if not self.peer_bytes and snap.get("peer_bytes"):
            self.peer_bytes = bytes(snap["peer_bytes"])
        if not self.tls_reason and snap.get("tls_reason"):
            self.tls_reason = str(snap["tls_reason"])
        for name, (connection, at_s) in snap.get("first_errors", {}).items():
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
    values = hist.get_percentile_to_value_dict([p for _, p in PERCENTILES])
    out = {name: values[p] for name, p in PERCENTILES}
    out["max"] = hist.get_max_value()
    out["mean"] = round(total_us / count if total_us is not None else hist.get_mean_value(), 1)
    return out


def escaped(data: bytes) -> str:
    """Bytes from the network as one printable line: ASCII kept, the rest escaped (\\r, \\n, \\xNN)."""
    return repr(bytes(data))[2:-1]


def errno_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code:
        return errno.errorcode.get(code, f"errno_{code}")
    return type(exc).__name__
