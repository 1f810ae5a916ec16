"""The service configuration (``inspect.yaml``): one strict model, validated before start.

Strict in Frigate's way: unknown keys are errors (a typo must not silently fall back to a
default), numbers are bounded, closed choices are Literals. Secrets never sit in the YAML:
they come from the environment or a credentials file, read at load time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.errors import ConfigError, read_utf8
from edge.validation import describe, repeated

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"  # safe in MQTT topics and file names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationConfig(_Strict):
    site: str = Field(default="site", pattern=ID_PATTERN)
    line: str = Field(default="line", pattern=ID_PATTERN)
    station: str = Field(default="station", pattern=ID_PATTERN)

    @property
    def path(self) -> str:
        return f"{self.site}/{self.line}/{self.station}"


class TileConfig(_Strict):
    """An overlapping grid over the ROI, for defects too small for one whole-frame pass."""

    rows: int = Field(default=2, ge=1, le=8)
    cols: int = Field(default=2, ge=1, le=8)
    overlap: float = Field(default=0.2, ge=0, lt=0.9, description="Share of a tile shared with its neighbour.")
    include_full: bool = Field(default=True, description="Also score the whole ROI as one tile.")
    windows: list[int] = Field(default_factory=list, max_length=4, description="Extra square grids at other scales "
                               "(e.g. [3]: a 3x3 grid as well), WinCLIP-style windows: more looks at small defects, "
                               "and a text heat map where no good parts are given.")

    @field_validator("windows")
    @classmethod
    def _window_sizes(cls, v: list[int]) -> list[int]:
        if any(not 1 <= n <= 8 for n in v):
            raise ValueError("each window grid is 1 to 8 tiles per side")
        return v


# they would collide with station topics: .../status, .../prompts/active, .../cmd/..., .../reply/... (responses)
RESERVED_CAMERA_NAMES = ("status", "prompts", "cmd", "reply")


class CameraConfig(_Strict):
    name: str = Field(pattern=ID_PATTERN)
    source: str = Field(description="USB index (0), /dev/videoN, rtsp://..., a GStreamer pipeline "
                        "ending in appsink, a video file, an image folder, or sim://line?seed=N.")
    fps: float | None = Field(default=None, gt=0, le=240, description="Upper limit on frames/s.")
    loop: bool = Field(default=True, description="Start files and folders again at their end.")
    roi: tuple[int, int, int, int] | None = Field(default=None, description="x, y, w, h in pixels.")
    tiles: TileConfig | None = None
    stale_after_s: float = Field(default=5.0, gt=0, le=600, description="No frame for this long: reconnect.")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_CAMERA_NAMES:
            raise ValueError(f"'{v}' is reserved for station topics; choose another camera name")
        return v

    @field_validator("roi")
    @classmethod
    def _roi_positive(cls, v: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if v is not None and (v[0] < 0 or v[1] < 0 or v[2] <= 0 or v[3] <= 0):
            raise ValueError("roi needs x, y >= 0 and w, h > 0")
        return v


class ModelConfig(_Strict):
    bundle: Path
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    backend: Literal["onnxruntime", "tensorrt", "auto"] = Field(
        default="auto", description="auto: TensorRT when it imports and a valid engine passes its self-test, "
        "else ONNX Runtime (the status says why).")
    fallback: bool = Field(default=False, description="With backend tensorrt: run ONNX Runtime (status degraded) "
                           "instead of refusing to start when the engine cannot be used.")
    threads: int | None = Field(default=None, ge=1, le=256, description="ONNX Runtime threads.")
    max_batch: int = Field(default=16, ge=1, le=256)


class TriggerConfig(_Strict):
    mode: Literal["continuous", "triggered"] = "continuous"
    timeout_s: float = Field(default=2.0, gt=0, le=60, description="A trigger waits this long for a frame.")


class ResultsConfig(_Strict):
    jsonl: Path | None = Field(default=None, description="Append every result to this JSON-lines file.")
    stdout: bool = False
    queue: int = Field(default=256, ge=1, le=100_000, description="Results waiting for the sinks.")


class EvidenceConfig(_Strict):
    dir: Path | None = Field(default=None, description="Default: STATE_DIR/evidence.")
    max_mb: float = Field(default=500, gt=0, le=1_000_000)
    ok_every: int = Field(default=0, ge=0, description="Also keep every Nth OK frame (0: none).")
    jpeg_quality: int = Field(default=85, ge=30, le=100)


class TlsConfig(_Strict):
    ca: Path | None = Field(default=None, description="CA bundle that signed the broker's certificate.")
    cert: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key: Path | None = Field(default=None, description="Client key (mutual TLS).")


class OutboxConfig(_Strict):
    max_rows: int = Field(default=1_000_000, ge=10, description="Results kept on disk (delivered ones are "
                          "evicted first); about 1 KB each.")
    policy: Literal["block", "drop_oldest"] = Field(
        default="block", description="When only undelivered results fill it: block (hold new results "
        "back, lose none) or drop_oldest (keep inspecting, discard the oldest undelivered, count them).")
    keep_delivered_s: float = Field(default=24 * 3600, ge=0, description="Replay window for cmd/replay.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL", description="NORMAL survives a process kill; FULL also a power cut (slower).")


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    prefix: str = Field(default="inspect", pattern=ID_PATTERN)
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="5: a refused publish carries a reason code. 3.1.1: mosquitto acknowledges "
        "an ACL-denied publish like a delivered one, so such results are lost silently.")
    tls: TlsConfig | None = None
    message_expiry_s: int | None = Field(default=None, ge=1, description="MQTT 5 message expiry of results.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    client_id: str | None = None
    username: str | None = None
    password_env: str = Field(default="EDGE_INSPECT_MQTT_PASSWORD",
                              description="Environment variable holding the password.")
    password_file: Path | None = Field(default=None, description="File holding the password "
                                       "(e.g. $CREDENTIALS_DIRECTORY/mqtt-password under systemd).")
    keepalive: int = Field(default=30, ge=5, le=3600)
    ack_alarm_s: float = Field(default=10.0, gt=0, le=86400, description="/healthz reports 'broker not "
                               "acknowledging' when the oldest undelivered result is older than this.")

    def password(self) -> str | None:
        """The secret, read now from the environment or the credentials file."""
        if self.password_file is not None:
            try:
                return read_utf8(self.password_file, "write the password as UTF-8",
                                 name=f"mqtt.password_file {self.password_file}").strip()
            except OSError as err:
                raise ConfigError(f"mqtt.password_file {self.password_file}: {err.strerror}; "
                                  "check the path and its permissions.") from err
        credential = Path(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent")) / "mqtt-password"
        if credential.is_file():  # systemd's LoadCredential=mqtt-password:...
            return credential.read_text(encoding="utf-8").strip()
        return os.environ.get(self.password_env)


class HttpConfig(_Strict):
    host: str = Field(default="127.0.0.1", description="Loopback by default; 0.0.0.0 exposes it to the network.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Health and metrics port (unset: off).")
    hostnames: list[str] = Field(default_factory=list, max_length=32, description="Names the page is reached by "
                                 "(e.g. station7.plant.local); requests for any other Host are refused (DNS "
                                 "rebinding). Loopback names and the bound address are always allowed.")


class UiUser(_Strict):
    """A login for the operator page ('edge-inspect passwd' prints the hash)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Literal["viewer", "operator"] = "viewer"
    password_hash: str = Field(pattern=r"^pbkdf2_sha256\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$")


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class OpsConfig(_Strict):
    """Operating the box: the HTTP endpoint (health, metrics, operator page), stall detection, logs."""

    http: HttpConfig = Field(default_factory=HttpConfig)
    users: list[UiUser] = Field(default_factory=list, description="Operator-page logins; none: open (loopback only).")
    users_file: Path | None = Field(default=None, description="YAML list of users (default under systemd: "
                                    "$CREDENTIALS_DIRECTORY/ui-users).")
    stall_after_s: float = Field(default=15.0, gt=0, le=3600,
                                 description="Inference loop silent this long: encoder unhealthy, watchdog stops.")
    log_format: Literal["text", "json"] = Field(default="text", description="json: one object per line (journald).")

    @model_validator(mode="after")
    def _no_open_page_off_loopback(self) -> OpsConfig:
        exposed = self.http.port is not None and self.http.host not in LOOPBACK
        credentials = Path(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent")) / "ui-users"
        if exposed and not self.users and self.users_file is None and not credentials.is_file():
            raise ValueError(f"ops.http.host {self.http.host} exposes the operator page: add ops.users (or "
                             "ops.users_file) with 'edge-inspect passwd' hashes, or bind to 127.0.0.1")
        return self


class ServiceConfig(_Strict):
    station: StationConfig = Field(default_factory=StationConfig)
    cameras: list[CameraConfig] = Field(min_length=1)
    model: ModelConfig
    prompts: Path
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    state_dir: Path = Field(default=Path("var/edge-inspect"),
                            description="seq counter, embedding cache, evidence (systemd: StateDirectory).")
    mqtt: MqttConfig | None = None
    ops: OpsConfig = Field(default_factory=OpsConfig)

    @model_validator(mode="after")
    def _unique_cameras(self) -> ServiceConfig:
        dupes = repeated([c.name for c in self.cameras])
        if dupes:
            raise ValueError(f"camera names must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def evidence_dir(self) -> Path:
        return self.evidence.dir or self.state_dir / "evidence"


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def parse_config(data: object, source: str, base: Path | None = None) -> ServiceConfig:
    """Validate a mapping; relative paths are taken relative to the config file's folder."""
    try:
        cfg = ServiceConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {describe(err)}; fix the config "
                          "('edge-inspect config keys' lists every key).") from err
    if base is not None:
        cfg.model.bundle = _resolve(base, cfg.model.bundle)
        cfg.prompts = _resolve(base, cfg.prompts)
        cfg.state_dir = _resolve(base, cfg.state_dir)
        if cfg.results.jsonl is not None:
            cfg.results.jsonl = _resolve(base, cfg.results.jsonl)
        if cfg.evidence.dir is not None:
            cfg.evidence.dir = _resolve(base, cfg.evidence.dir)
        if cfg.ops.users_file is not None:
            cfg.ops.users_file = _resolve(base, Path(os.path.expandvars(cfg.ops.users_file)))
        if cfg.mqtt is not None:
            if cfg.mqtt.password_file is not None:  # may name $CREDENTIALS_DIRECTORY/mqtt-password
                cfg.mqtt.password_file = _resolve(base, Path(os.path.expandvars(cfg.mqtt.password_file)))
            if cfg.mqtt.tls is not None:
                for key in ("ca", "cert", "key"):
                    if getattr(cfg.mqtt.tls, key) is not None:
                        setattr(cfg.mqtt.tls, key, _resolve(base, getattr(cfg.mqtt.tls, key)))
    return cfg


def load_config(path: str | Path) -> ServiceConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(read_utf8(path, "save the config as UTF-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror}); check the path.") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax.") from err
    return parse_config(data, str(path), base=path.resolve().parent)
