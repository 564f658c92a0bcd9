"""The signing secret: the configured one, or the machine's development secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from gateway.errors import AuthError
from gateway.settings import Settings

__all__ = ["DEV_SECRET_FILE", "jwt_secret", "load_or_create_dev_secret"]

DEV_SECRET_FILE: Final = "dev-jwt-secret"  # noqa: S105  # a file name, not a secret
_MIN_CHARS: Final = 32


def jwt_secret(settings: Settings) -> str:
    """The configured signing secret, or the machine's dev secret if none is set."""
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.reveal()
    return load_or_create_dev_secret(settings.data_dir)


def load_or_create_dev_secret(data_dir: Path) -> str:
    """Return the machine's dev signing secret, creating it once (mode 0600).

    Used only when no ``TICKGATE_AUTH_JWT_SECRET`` is configured, so that
    ``tickgate token`` and ``tickgate run`` agree on one machine.
    """
    path = data_dir / DEV_SECRET_FILE
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write aside with mode 0600 from the start, then hard-link into place:
        # the link either creates the whole file or fails because another
        # process won, never half a file and never a readable one.
        tmp = data_dir / f".{DEV_SECRET_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_urlsafe(48))
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < _MIN_CHARS:
        raise AuthError("token_invalid", f"dev secret in {path} is too short; delete it")
    return secret
