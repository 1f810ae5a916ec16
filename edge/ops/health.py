"""``/healthz``: healthy only when cameras, encoder, outbox and broker are; the body says what is not.

Built from the service's own status board (the same reasons the MQTT status carries) plus
the one thing the board cannot see from inside a stuck thread: an inference loop that has
stopped turning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.cameras import CameraState

if TYPE_CHECKING:
    from edge.service.service import InspectionService

COMPONENTS = ("camera", "encoder", "outbox", "mqtt", "results")


def health(service: InspectionService, stall_after_s: float) -> tuple[bool, dict[str, Any]]:
    """(healthy, body) for ``/healthz``."""
    snap = service.status.snapshot()
    problems = {r.split(": ", 1)[0]: r.split(": ", 1)[1] for r in snap["reasons"]}
    stalled = service.stalled_for()
    if stalled > stall_after_s:
        problems["encoder"] = f"inference loop stalled for {stalled:.0f} s (limit {stall_after_s:g} s)"
    cameras = {name: {"state": cam.state.value, "frames": cam.stats.frames, "reconnects": cam.stats.reconnects,
                      "last_error": cam.stats.last_error} for name, cam in service.cameras.items()}
    for name, cam in service.cameras.items():
        if cam.state == CameraState.RECONNECTING and f"camera {name}" not in problems:
            problems[f"camera {name}"] = cam.stats.last_error or cam.state.value
    bridge = service.bridge
    outbox = bridge.outbox.stats() if bridge is not None else None
    mqtt = None if bridge is None else {"connected": bridge.link.state.connected,
                                        "last_error": bridge.link.state.last_error}
    body = {
        "healthy": not problems,
        "problems": problems,
        "cameras": cameras,
        "encoder": {"backend": service.backend, "stalled_s": round(stalled, 2)},
        "outbox": outbox,
        "mqtt": mqtt,
        "result_queue": service.result_queue_depth,
    }
    return not problems, body
