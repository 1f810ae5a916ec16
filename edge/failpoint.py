"""Fail points: named places where a test can make this process die as a power cut would.

``failpoint("name")`` does nothing unless ``EDGE_INSPECT_FAILPOINT=name`` is set in the
environment, in which case the process SIGKILLs itself there. Tests use it to prove that a
kill at the worst moment (between writing artifacts and the manifest, say) leaves nothing
half-done, which a kill at a random time would almost never hit.
"""

from __future__ import annotations

import os
import signal

ENV = "EDGE_INSPECT_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
