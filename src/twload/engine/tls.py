"""The client's TLS context in Python, built from the plan: for the pre-flight's probe connection
(engine/preflight.py) and the plan's check of --cacert (cli/run.py). The run's own TLS is the core's
(engine/core/tls.c, OpenSSL), which takes the same options."""

from __future__ import annotations

import ssl

from twload.plan import Plan, PlanError


def tls_context(plan: Plan) -> ssl.SSLContext:
    """Client TLS context: the system's trust store (or --cacert), SNI from the URL's host."""
    try:
        context = ssl.create_default_context(cafile=plan.cacert)
    except (OSError, ssl.SSLError) as exc:
        raise PlanError(f"cannot load --cacert {plan.cacert}: {exc}") from None
    if plan.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    # the pre-flight's handshake offers what the core's will (--ciphersuites has no Python setter)
    if plan.tls_min == "1.3":
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    if plan.ciphers:
        try:
            context.set_ciphers(plan.ciphers)
        except ssl.SSLError:
            raise PlanError(f"--ciphers {plan.ciphers}: no cipher OpenSSL knows") from None
    return context
