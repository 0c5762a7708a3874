"""Keeping credentials out of responses, the page and logs: passwords in URLs and DSNs,
and the service's own token."""

from __future__ import annotations

import logging
import re

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd|token|secret)\s*[=:]\s*)"
                           r"(?P<quote>['\"]?)[^\s'\",;]+", re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL passwords (``scheme://user:***@host``), ``password=...`` values
    and each of ``secrets`` replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    text = _KEY_PASSWORD.sub(r"\g<head>\g<quote>***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Redacts every record a handler emits (install on the handlers, so records of every
    logger pass through it)."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logs(secrets: tuple[str, ...]) -> None:
    """Put a :class:`RedactingFilter` on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(secrets))
