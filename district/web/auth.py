"""Staff sessions, CSRF tokens and the log-in rate limit.

* A session is a **signed cookie** (itsdangerous, HMAC-SHA1 over a random nonce, the user name
  and the time it was issued; 12 h at most), ``HttpOnly``, ``SameSite=Lax`` and ``Secure``
  when the page came over https. The role is read from the store on every request, so a user
  removed or made a viewer loses their rights at once. Log-out revokes the nonce for the
  rest of the server's life; deleting the secret file logs everybody out.
* The **secret** lives in the console's state directory (beside the database), made on first
  start with mode 0600; it is never logged and never in a repr.
* The **CSRF token** of a session is an HMAC of its nonce: every form carries it as a hidden
  field and every htmx request as the ``X-CSRF-Token`` header. The log-in form, before any
  session, is protected the same way by a pre-session cookie.
* **Log-in attempts** are limited per user name and per client address (5 failures a
  minute by default); the next one gets 429 with the wait, before any password is checked.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "dc_session"
PRE_COOKIE = "dc_pre"
LANG_COOKIE = "lang"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_MAX_AGE_S = 12 * 3600
SECRET_FILE = "web-secret"


def load_secret(state_dir: Path) -> bytes:
    """The dashboard's signing secret from ``state_dir/web-secret``, made (0600) if missing."""
    path = Path(state_dir) / SECRET_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_secret(state_dir)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
    if len(text) < 32:
        raise ValueError(f"{path}: the dashboard secret is too short (delete the file to make "
                         "a new one)")
    return text.encode("ascii")


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, since when, and its nonce (the CSRF token derives from it)."""

    user: str
    nonce: str = field(repr=False)
    issued: float

    def __repr__(self) -> str:
        return f"Session(user={self.user!r}, issued={self.issued!r})"


class Sessions:
    """Issue, read and revoke session cookies; make and check CSRF tokens."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time,
                 max_age_s: float = SESSION_MAX_AGE_S) -> None:
        self._secret = secret
        self._signer = URLSafeTimedSerializer(secret, salt="diemcau-session")
        self.clock = clock
        self.max_age_s = max_age_s
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Sessions(max_age_s={self.max_age_s})"

    def issue(self, user: str) -> tuple[str, Session]:
        """A new session for ``user``: ``(cookie value, session)``."""
        s = Session(user, secrets.token_urlsafe(18), self.clock())
        return self._signer.dumps({"u": s.user, "n": s.nonce, "t": s.issued}), s

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None if it is missing, forged, expired or revoked."""
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        user, nonce, issued = data.get("u"), data.get("n"), data.get("t")
        if not (isinstance(user, str) and isinstance(nonce, str)
                and isinstance(issued, int | float)):
            return None
        now = self.clock()
        if not issued - 60 <= now <= issued + self.max_age_s:
            return None
        with self._lock:
            if nonce in self._revoked:
                return None
        return Session(user, nonce, float(issued))

    def revoke(self, session: Session) -> None:
        """Log a session out (kept until it would have expired anyway)."""
        now = self.clock()
        with self._lock:
            self._revoked = {n: t for n, t in self._revoked.items() if t > now}
            self._revoked[session.nonce] = session.issued + self.max_age_s

    def csrf(self, nonce: str) -> str:
        """The CSRF token bound to a session's (or a pre-session cookie's) nonce."""
        return hmac.new(self._secret, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``nonce`` (constant-time)."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf(nonce), token)


class RateLimiter:
    """At most ``limit`` failures per key in any ``per_s`` seconds.

    ``wait(keys)`` says how long until every key may try again (0 if it may now);
    ``fail(keys)`` records a failure for each key; ``clear(key)`` forgets one (a user who got
    in). ``clock`` is monotonic seconds (injected in tests).
    """

    def __init__(self, limit: int = 5, per_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.per_s = per_s
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        while q and q[0] <= now - self.per_s:
            q.popleft()
        return q

    def wait(self, keys: Iterable[str]) -> float:
        """Seconds until all ``keys`` are below the limit again (0: go ahead)."""
        now = self.clock()
        longest = 0.0
        with self._lock:
            for k in keys:
                q = self._trim(k, now)
                if len(q) >= self.limit:
                    longest = max(longest, q[len(q) - self.limit] + self.per_s - now)
            if len(self._hits) > 10000:  # forget idle keys (an address scan must not grow this)
                self._hits = {k: q for k, q in self._hits.items() if q}
        return longest

    def fail(self, keys: Iterable[str]) -> None:
        """Count one failure against every key."""
        now = self.clock()
        with self._lock:
            for k in keys:
                self._trim(k, now).append(now)

    def clear(self, key: str) -> None:
        """Forget the failures of one key."""
        with self._lock:
            self._hits.pop(key, None)
