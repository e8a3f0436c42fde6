"""Named scenarios: parameters, what they show, and the explanation printed with the numbers."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from twload.sim.kernels import PROFILES
from twload.sim.model import Params


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    defaults: dict = field(default_factory=dict)
    own: tuple[str, ...] = ()  # parameters particular to this scenario (beyond the common ones)


COMMON = ("ports", "rate", "duration", "clients", "server_timestamps", "tw_reuse", "tw_reuse_delay_ms")

SCENARIOS = {s.name: s for s in (
    Scenario("client-close-exhaustion",
             "client closes first, no reuse: ports run out at range/60 s new connections/s, then EADDRNOTAVAIL",
             {"ports": 1000, "rate": 50, "duration": 90, "close": "fin", "tw_reuse": 0}, ("close",)),
    Scenario("tw-reuse",
             "tcp_tw_reuse=1, timestamps on both sides: the same rate is sustained",
             {"ports": 1000, "rate": 50, "duration": 90, "close": "fin", "tw_reuse": 1}, ("close",)),
    Scenario("tw-reuse-lb-no-timestamps",
             "tcp_tw_reuse=1 against a load balancer with timestamps off: no help",
             {"ports": 1000, "rate": 50, "duration": 90, "close": "fin", "tw_reuse": 1, "server_timestamps": False},
             ("close",)),
    Scenario("nat-tw-recycle",
             "tw_recycle + timestamps on the server, N clients behind one NAT address: SYNs of lagging clocks dropped",
             {"kernel": "2.6.32", "clients": 4, "rate": 5, "duration": 60, "close": "server", "tw_recycle": True,
              "nat": True}, ("tw_recycle", "nat_ports", "nat_policy", "clock_spread_s", "kernel")),
    Scenario("nat-timewait-collision",
             "the NAT reuses a quintuple still in the server's TIME_WAIT: the SYN looks old, the connect waits",
             {"clients": 2, "rate": 0.2, "duration": 120, "close": "server", "nat": True, "nat_ports": 2,
              "connect_timeout": 127},
             ("nat_ports", "nat_policy", "connect_timeout")),
    Scenario("server-close",
             "Connection: close: the server closes first; TIME_WAIT on the server, none on the client",
             {"ports": 1000, "rate": 50, "duration": 90, "close": "server", "tw_reuse": 0}, ()),
    Scenario("rst-close",
             "SO_LINGER {1,0} RST close: no TIME_WAIT anywhere",
             {"ports": 1000, "rate": 50, "duration": 90, "close": "rst", "tw_reuse": 0}, ()),
    Scenario("paws-wrap",
             "timestamps wrap after 24.8 days at 1 kHz: the PAWS check passes again thanks to TCP_PAWS_24DAYS",
             {"idle_days_max": 60, "step_days": 0.5}, ("idle_days_max", "step_days", "ts_hz")),
    Scenario("ts-offsets-4.10",
             "kernel 4.10's random per-connection timestamp offsets break tw_recycle even without NAT",
             {"kernel": "4.10", "clients": 1, "rate": 5, "duration": 60, "close": "server", "tw_recycle": True},
             ("kernel", "tw_recycle")),
)}

PARAM_NAMES = {f.name for f in fields(Params)} - {"trace", "seed"}


def coerce(name: str, text: str, current: object) -> bool | str | int | float:
    """A --set value typed like the parameter's default."""
    if isinstance(current, bool) or name in ("server_timestamps", "client_timestamps", "tw_recycle", "nat",
                                             "loopback"):
        if text.lower() in ("1", "on", "true", "yes"):
            return True
        if text.lower() in ("0", "off", "false", "no"):
            return False
        raise ValueError(f"{name} takes on/off")
    if name in ("kernel", "close", "nat_policy"):
        return text
    value = float(text)
    return int(value) if value.is_integer() and name not in ("rate", "duration", "rtt_ms") else value


def params_for(name: str, overrides: dict[str, str], kernel: str | None, seed: int) -> tuple[Params, dict]:
    """(model parameters, scenario-only extras such as paws-wrap's) for a scenario and --set values."""
    scenario = SCENARIOS[name]
    values = dict(scenario.defaults)
    if kernel:
        values["kernel"] = kernel
    base = Params()
    extras = {k: v for k, v in values.items() if k not in PARAM_NAMES}
    for key, text in overrides.items():
        if key not in PARAM_NAMES and key not in scenario.own:
            raise ValueError(f"unknown parameter {key!r} for {name}: common ones are {', '.join(COMMON)}; "
                             f"this scenario also takes {', '.join(scenario.own) or 'nothing else'}")
        current = values.get(key, getattr(base, key, extras.get(key)))
        value = coerce(key, text, current)
        if key in PARAM_NAMES:
            values[key] = value
        else:
            extras[key] = value
    p = Params(**{k: v for k, v in values.items() if k in PARAM_NAMES}, seed=seed)
    if p.kernel not in PROFILES:
        raise ValueError(f"unknown kernel {p.kernel!r}: one of {', '.join(PROFILES)}")
    if p.tw_reuse is None:
        p.tw_reuse = PROFILES[p.kernel].tw_reuse_default
    return p, extras
