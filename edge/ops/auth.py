"""Who may look and who may change: logins for the operator page when it leaves loopback.

* Passwords are stored as PBKDF2-SHA256 hashes (``edge-inspect passwd`` prints one), in the
  config (``ops.users``) or a credentials file (``ops.users_file``, or systemd's
  ``$CREDENTIALS_DIRECTORY/ui-users``).
* A session is a signed cookie (HMAC-SHA256 with a key kept in the state directory, so a
  restart does not log everyone out), HttpOnly and SameSite=Strict.
* Changes also need the session's CSRF token in ``X-CSRF-Token`` (derived from the session,
  so nothing is stored server-side) and a JSON or image content type.
* Roles: ``viewer`` reads everything; ``operator`` may also preview, activate, roll back and
  upload. Without users the page is open, which is allowed only on loopback: an exposed page
  whose user list turns out empty (an empty ``users_file``) refuses to start.
* Logging out revokes the session (its nonce is kept, in the state directory, until the
  session would have expired); an unknown user name costs the same hash as a known one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.config import LOOPBACK, OpsConfig, UiUser
from edge.errors import ConfigError

ITERATIONS = 200_000
SESSION_COOKIE = "edge_inspect_session"
SESSION_S = 12 * 3600  # one shift


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


DUMMY_HASH = "pbkdf2_sha256$200000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class User:
    name: str
    role: str  # viewer | operator

    @property
    def may_change(self) -> bool:
        return self.role == "operator"


LOCAL = User("local", "operator")  # the open page on loopback


def load_users(cfg: OpsConfig) -> dict[str, UiUser]:
    users = {u.name: u for u in cfg.users}
    path = cfg.users_file
    credential = Path(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent")) / "ui-users"
    if path is None and credential.is_file():
        path = credential
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            users.update({u.name: u for u in (UiUser.model_validate(x) for x in data)})
        except (OSError, ValueError) as err:
            raise ConfigError(f"ops.users_file {path}: {err}; it must be a YAML list of "
                              "{name, role, password_hash}.") from err
    return users


def _same(a: str, b: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a forged header) without raising."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def checked_users(cfg: OpsConfig) -> dict[str, UiUser]:
    """The page's users; a ConfigError when the page is exposed and the list is empty (an empty or ``[]``
    ``users_file``): logins never fail open. The service and ``config check`` both ask here."""
    users = load_users(cfg)
    exposed = cfg.http.port is not None and cfg.http.host not in LOOPBACK
    if exposed and not users:
        raise ConfigError(f"ops.http.host {cfg.http.host} exposes the operator page but no login is configured "
                          f"(ops.users and {cfg.users_file or 'the ui-users credential'} are empty); add users "
                          "with 'edge-inspect passwd' or bind to 127.0.0.1.")
    return users


class Auth:
    def __init__(self, cfg: OpsConfig, key_file: Path) -> None:
        self.users = checked_users(cfg)
        self.enabled = bool(self.users)
        self._key = self._load_key(key_file) if self.enabled else b""
        self._revoked_file = key_file.with_name("ui-revoked.json")
        self._revoked: dict[str, float] = self._load_revoked()

    @staticmethod
    def _load_key(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
            return key

    def _load_revoked(self) -> dict[str, float]:
        try:
            data = json.loads(self._revoked_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        now = time.time()
        return {str(k): float(v) for k, v in data.items() if float(v) > now} if isinstance(data, dict) else {}

    def revoke(self, session: str) -> None:
        """Log a session out for good: its nonce stays refused until it would have expired."""
        data = self._payload(session)
        if data is None or "n" not in data:
            return
        now = time.time()
        self._revoked = {k: v for k, v in self._revoked.items() if v > now}
        self._revoked[str(data["n"])] = float(data.get("exp", now + SESSION_S))
        try:
            tmp = self._revoked_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._revoked), encoding="utf-8")
            tmp.replace(self._revoked_file)
        except OSError:
            pass  # kept in memory; a restart would forget it, which the session's own expiry bounds

    def login(self, name: str, password: str) -> tuple[str, str] | None:
        """(session cookie value, CSRF token) for good credentials, else None."""
        user = self.users.get(name)
        good = verify_password(password, user.password_hash if user else DUMMY_HASH)  # same cost either way
        if user is None or not good:
            return None
        payload = _b64(json.dumps({"u": user.name, "r": user.role, "n": secrets.token_hex(12),
                                   "exp": int(time.time()) + SESSION_S}).encode())
        session = f"{payload}.{self._sign(payload)}"
        return session, self.csrf_token(session)

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def csrf_token(self, session: str) -> str:
        return self._sign("csrf:" + session)

    def _payload(self, session: str) -> dict[str, Any] | None:
        """The signed payload of a session cookie, or None when it is forged or malformed."""
        payload, _, signature = session.partition(".")
        if not payload or not _same(signature, self._sign(payload)):
            return None
        try:
            data: Any = json.loads(_unb64(payload))
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def user(self, cookies: dict[str, str]) -> User | None:
        """The logged-in user of a request (LOCAL when the page is open), or None."""
        if not self.enabled:
            return LOCAL
        data = self._payload(cookies.get(SESSION_COOKIE, ""))
        if data is None or data.get("exp", 0) < time.time() or data.get("u") not in self.users:
            return None
        if str(data.get("n")) in self._revoked:
            return None
        return User(data["u"], self.users[data["u"]].role)  # the role as configured now, not as signed

    def csrf_ok(self, cookies: dict[str, str], header: str | None) -> bool:
        if not self.enabled:
            return True
        return bool(header) and _same(header or "", self.csrf_token(cookies.get(SESSION_COOKIE, "")))
