"""One run's live outputs, fed by the supervisor's two hooks: `on_progress(progress)` (a few times a
second: the elapsed time, the run's totals so far) and `on_second(sample)` (each merged second, as
samples.jsonl gets it). Both the local supervisor and the Dask coordinator call them.

The metrics endpoint is updated once per merged second; the screen is redrawn on each call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from twload.live.exposition import MetricsEndpoint
from twload.live.screen import Screen
from twload.live.state import LiveState, ProgressLike, RunFacts, url_without_credentials
from twload.live.view import render
from twload.plan import Plan

DEFAULT_LINGER_S = 2.0


def facts_of(plan: Plan, engine: str | None = None, io: str | None = None) -> RunFacts:
    """The run's facts from its Plan."""
    host, port = plan.target.address[:2]
    destination = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return RunFacts(url=url_without_credentials(plan.url), destination=destination,
                    engine=engine or plan.engine_choice, io=io or plan.io, close=plan.close,
                    connections=plan.connections, planned_s=plan.duration_s, planned_requests=plan.requests,
                    open_loop=bool(plan.open_loop))


class LiveRun:
    """The metrics endpoint (when `--metrics-listen` was given) and the full-screen view (when asked)."""

    def __init__(self, facts: RunFacts, endpoint: MetricsEndpoint | None = None,
                 linger_s: float = DEFAULT_LINGER_S) -> None:
        self.state = LiveState(facts)
        self.endpoint = endpoint
        self.linger_s = linger_s
        self.screen: Screen | None = None
        self.seconds = 0  # merged seconds taken in

    @property
    def active(self) -> bool:
        return self.endpoint is not None or self.screen is not None

    def on_second(self, sample: dict) -> None:
        self.state.on_second(sample)
        self.seconds += 1

    def on_progress(self, progress: ProgressLike) -> None:
        if self.state.on_progress(progress) and self.endpoint is not None:
            self.endpoint.update(self.state, progress.totals)
        if self.screen is not None:
            self.screen.refresh()

    @contextmanager
    def shown(self, console: Console, full_screen: bool, budget: dict | None = None) -> Iterator[LiveRun]:
        """While the run goes: the screen (when `full_screen`) over the console's terminal."""
        self.state.set_budget(budget)
        if full_screen:
            self.screen = Screen(console, lambda width, height: render(self.state, width, height))
            self.screen.start()
            if not self.screen.keys.reading:
                self.state.stop_hint = "Ctrl-C: stop"
        try:
            yield self
        finally:
            if self.screen is not None:
                self.screen.close()
                self.screen = None

    def close(self) -> None:
        """Keep the endpoint answering `linger_s` after the run (a scraper's last look at the final
        numbers: one scrape interval), then stop it."""
        if self.endpoint is None:
            return
        if self.seconds:
            time.sleep(self.linger_s)
        self.endpoint.close()
        self.endpoint = None
