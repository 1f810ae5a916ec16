"""``/healthz``: healthy only when cameras, encoder, outbox and broker are; the body says what is not.

Built from the status board (the same reasons the MQTT status carries, thread failures
included) plus the health sources the composition root registered: the pipeline (cameras,
an inference loop that stopped turning, which cannot report itself), the outbox (a broker
that does not acknowledge) and the MQTT link.
"""

from __future__ import annotations

from typing import Any

from edge.service.control import HealthSource


def health(status: dict[str, Any], sources: list[HealthSource]) -> tuple[bool, dict[str, Any]]:
    """(healthy, body) for ``/healthz`` from a status snapshot and the sources."""
    problems = {r.split(": ", 1)[0]: r.split(": ", 1)[1] for r in status["reasons"]}
    body: dict[str, Any] = {"outbox": None, "mqtt": None}
    for source in sources:
        found, facts = source.health()
        for key, reason in found.items():
            problems.setdefault(key, reason)
        body.update(facts)
    return not problems, {"healthy": not problems, "problems": problems, **body}
