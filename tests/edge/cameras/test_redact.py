"""A camera URL's credentials never leave the config: not in errors, camera stats, /healthz or the MQTT status."""

from __future__ import annotations

import threading
import time

import pytest

from edge.cameras import Camera, CameraState, open_source, redact
from edge.config import CameraConfig
from edge.errors import CameraError

URL = "rtsp://admin:s3cret@127.0.0.1:1/x"  # nothing listens on port 1: refused at once


@pytest.mark.parametrize(("source", "shown"), [
    (URL, "rtsp://***@127.0.0.1:1/x"),
    ("rtsp://admin:p@ss@cam.local/stream?x=1", "rtsp://***@cam.local/stream?x=1"),
    ("rtspsrc location=rtsp://u:pw@h/s user-id=admin user-pw=s3cret ! appsink",
     "rtspsrc location=rtsp://***@h/s user-id=*** user-pw=*** ! appsink"),
    ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
    ("/dev/video0", "/dev/video0"),
    ("sim://line?seed=1", "sim://line?seed=1"),
])
def test_redact_hides_user_info_only(source: str, shown: str) -> None:
    assert redact(source) == shown


def test_an_unreachable_camera_with_a_password_does_not_show_it() -> None:
    with pytest.raises(CameraError) as err:
        open_source(URL)
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)
    assert "rtsp://***@127.0.0.1:1/x" in str(err.value)

    camera = Camera(CameraConfig(name="cam1", source=URL))
    thread = threading.Thread(target=camera.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while camera.stats.last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    camera.stop()
    thread.join(30)
    assert camera.state == CameraState.STOPPED
    assert camera.stats.last_error is not None and "***@127.0.0.1" in camera.stats.last_error
    assert "s3cret" not in camera.stats.last_error  # what /healthz, /api/state and the status reasons show


def test_any_reason_a_camera_records_is_redacted() -> None:
    camera = Camera(CameraConfig(name="cam1", source=URL))
    camera._set_state(CameraState.RECONNECTING, f"source failed: OSError: {URL} went away")
    assert camera.stats.last_error == "source failed: OSError: rtsp://***@127.0.0.1:1/x went away"
