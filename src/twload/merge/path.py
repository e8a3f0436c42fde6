"""What a run's samples and summary say about trouble on the path: when each error was counted,
retransmissions, and connects that waited for a SYN to be sent again.

The Merger keeps one and calls it at three points (the start, each second merged, the summary);
the transport reads the namespace's retransmission counter (kernel/snmp.py) and passes the
reading in, so this stays free of I/O.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from twload.metrics import counts_of, recorded_span

# The initial retransmission timeout: a connect whose SYN (or the SYN-ACK) was lost waits this long
# before the SYN goes again (include/net/tcp.h: TCP_TIMEOUT_INIT, 1 * HZ, set by tcp_connect_init ->
# tcp_timeout_init in net/ipv4/tcp_output.c, Linux 6.x; RFC 6298 2.1). A connect that took this long
# or longer had its handshake's first exchange lost at least once.
SLOW_CONNECT_US = 1_000_000
SLOW_CONNECT_WHY = (
    "connects that took 1 s or more: the SYN or its SYN-ACK was lost and the SYN sent again after the "
    "initial retransmission timeout (1 s). Either the target's accept queue was full (a listener whose "
    "application accepts too slowly drops SYNs: the target's ListenOverflows and ListenDrops, "
    "`nstat -az TcpExtListenOverflows` there) or the path loses packets (see retransmits)")


def count_at_least(hist: HdrHistogram, value_us: int) -> int:
    """Recorded values of at least value_us (to the histogram's precision: 3 significant digits): the
    counts from value_us's slot on. (hdrh's recorded iterator gives the same sum, and walks every slot
    with Python calls to get it, at each run's end.)"""
    if not hist.get_total_count() or value_us > hist.get_max_value():
        return 0
    low, high = recorded_span(hist)
    return sum(counts_of(hist)[max(low, hist.get_counts_array_index(value_us)):high + 1])


class PathFacts:
    """errors_window, retransmits and slow_connects, for samples.jsonl and summary.json.

    Retransmissions are this network namespace's Tcp RetransSegs (/proc/net/snmp), read once a
    second, not the sockets' own tcpi_total_retrans (TCP_INFO): that one lives with the socket and
    is gone when it closes, and a short-connection run closes most of its sockets within the second
    they were opened; reading it before every close would cost a getsockopt per connection in the
    hot path. The namespace's counter keeps the closed sockets' retransmissions; it is exact for the
    run when twload is the only TCP user of its network namespace (the lab's client namespace, a
    container of its own), and includes the others' otherwise."""

    def __init__(self) -> None:
        self.windows: dict[str, list[int]] = {}  # error name -> [first second, last second] (samples' t)
        self.last_retrans: int | None = None
        self.retransmits = 0
        self.retransmits_peak = 0

    def begin(self, counter: int | None) -> None:
        """At the run's time 0: the counter's reading (kernel.snmp.retransmitted_segments) that the
        first second counts from; None where it cannot be read."""
        self.last_retrans = counter

    def sample(self, tick: int, errors: dict[str, int], counter: int | None) -> dict:
        """Note the second's errors and the counter's reading as it is written; the keys it adds to
        the second's sample (`retransmits`)."""
        for name, count in errors.items():
            if count:
                window = self.windows.setdefault(name, [tick, tick])
                window[1] = tick
        now = counter
        if now is None or self.last_retrans is None:
            return {}
        count = max(0, now - self.last_retrans)
        self.last_retrans = now
        self.retransmits += count
        self.retransmits_peak = max(self.retransmits_peak, count)
        return {"retransmits": count}

    def summary(self, connect: HdrHistogram, elapsed_s: float) -> dict:
        keys: dict = {}
        if self.windows:
            keys["errors_window"] = {name: {"first_t": first, "last_t": last}
                                     for name, (first, last) in sorted(self.windows.items())}
        if self.last_retrans is not None:
            keys["retransmits"] = self.retransmits
            keys["retransmits_per_s"] = round(self.retransmits / elapsed_s, 1) if elapsed_s > 0 else 0.0
            keys["retransmits_peak_per_s"] = self.retransmits_peak
        slow = count_at_least(connect, SLOW_CONNECT_US)
        if slow:
            keys["slow_connects"] = {"count": slow, "at_least_s": SLOW_CONNECT_US / 1e6, "why": SLOW_CONNECT_WHY}
        return keys
