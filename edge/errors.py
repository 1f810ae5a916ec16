"""One small exception hierarchy for the whole product.

Every user-facing failure is an :class:`EdgeInspectError` whose message says what was
found, what was expected and how to fix it, on one line. The CLI prints ``str(err)`` and
exits with ``err.exit_code``; the service turns it into a ``status`` update. Nothing
below the CLI prints or exits on its own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class EdgeInspectError(Exception):
    """Base of every error that a user can act on."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(EdgeInspectError):
    """A config file, prompt set or command-line option is invalid."""

    exit_code = 2


def read_utf8(path: Path, fix: str, error: type[EdgeInspectError] = ConfigError, name: str | None = None) -> str:
    """A text file every reader of user files reads alike: bytes that are not UTF-8 are one line naming the file
    (``name``, else its path), the first bad byte and ``fix``, not a UnicodeDecodeError traceback. OSError is the
    caller's to word (a missing config and a missing manifest need different advice)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{name or path}: not UTF-8 text (byte {err.start}); {fix}.") from err


class BundleError(EdgeInspectError):
    """A model bundle is missing, incomplete, or does not match its manifest."""

    exit_code = 3


class ExportError(EdgeInspectError):
    """A checkpoint cannot be exported, or its ONNX does not match PyTorch."""

    exit_code = 4


class CalibrationError(EdgeInspectError):
    """Calibration data is unusable or a quantized model fails its accuracy gate."""

    exit_code = 5


class EngineError(EdgeInspectError):
    """An inference backend cannot be loaded or refuses its engine."""

    exit_code = 6


class CameraError(EdgeInspectError):
    """A camera source cannot be opened or has stopped delivering frames."""

    exit_code = 7


class ImageError(EdgeInspectError):
    """A file that should be an image cannot be decoded."""

    exit_code = 8


class PublishError(EdgeInspectError):
    """A result cannot be published or stored for publishing."""

    exit_code = 9


class MissingExtraError(EdgeInspectError):
    """A command needs an optional part of the install (an extra) that this machine lacks."""

    exit_code = 10


class MissingDeviceStack(MissingExtraError, EngineError):
    """TensorRT or pycuda is missing: an extra (exit code 10) that is also an engine error, so that a station
    on ``backend: auto`` falls back to ONNX Runtime on it like on any other engine problem."""


# top-level module -> the extra of pyproject.toml that brings it
EXTRA_OF = {"torch": "export", "transformers": "export", "safetensors": "export", "onnxscript": "export",
            "onnx": "export", "tensorrt": "tensorrt", "pycuda": "tensorrt"}


def install_hint(extra: str) -> str:
    return f"pip install -c constraints.txt 'edge-inspect[{extra}]'"


def missing_extra(err: ImportError) -> MissingExtraError | None:
    """The one-line error for an import that an extra would satisfy; None for any other import error (a bug)."""
    top = (err.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return _missing(top, "this command", extra)


def _missing(module: str, who: str, extra: str) -> MissingExtraError:
    return MissingExtraError(f"{module} is not installed; {who} needs the '{extra}' extra: {install_hint(extra)} "
                             "(or use ./run on a workstation).")


def require_extra(command: str, modules: tuple[str, ...], extra: str) -> None:
    """Refuse in one line, before any work, when a module of ``extra`` is absent (found without importing it:
    ``edge/`` never imports torch, even to find out that it is there)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise _missing(module, command, extra)
