"""Keep secrets out of messages, logs and stored run records.

Configs carry credentials after ``${ENV_VAR}`` interpolation (a database password in a URL, an
API key in a header or query parameter). Everything a source prints goes through
:func:`mask_secrets`, and each source also scrubs the exact secret values it knows about
(:meth:`SourceSpec.secret_values`), which catches them even inside a driver's own message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Exact-value scrubbing skips shorter values: masking every "apg" in a message whose password
# is "apg" would also hide the user and database names. URL passwords are masked by pattern.
MIN_SECRET = 6

# Header, parameter and config key names whose values are credentials.
_SECRET_NAME = re.compile(
    r"password|passwd|pwd|secret|token|api[-_]?key|apikey|authorization|x-auth|cookie|credential|"
    r"signature|private[-_]?key|access[-_]?key|(^|[-_])(pass|key|auth|sig)($|[-_])",
    re.IGNORECASE,
)
# user:password@host (with or without a scheme, so a malformed URL is masked too)
_URL_PASSWORD = re.compile(r"(?P<head>[^\s:/@'\"]+:)(?P<pw>[^\s@/'\"]+)@")
# ?api_key=abc&x=1 -> ?api_key=***&x=1 (only parameters whose name looks like a secret)
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[^=&#\s]+)=)(?P<value>[^&#\s'\"]*)")
# "Authorization: Bearer abc" or "'x-api-key': 'abc'" in free text. Only names that are
# credentials as a whole (not "tokens_used: ...") so ordinary messages stay readable.
_HEADER_NAME = re.compile(
    r"(x-)?(api[-_]?key|apikey|authorization|(access|refresh|auth|id|bearer)[-_]?token|token|"
    r"password|passwd|secret|client[-_]secret|cookie|set-cookie|x-auth-token|private[-_]key)",
    re.IGNORECASE,
)
_HEADER_TEXT = re.compile(
    r"(?P<head>['\"]?(?P<name>[A-Za-z0-9_\-]+)['\"]?\s*[:=]\s*['\"]?)(?P<value>[^'\",}\s][^'\",}\n]*)"
)


def is_secret_name(name: str) -> bool:
    """True for names like ``Authorization``, ``X-Api-Key``, ``access_token``, ``password``."""
    return bool(_SECRET_NAME.search(name))


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, secret-looking query parameters and header values in ``text``.

    ``secrets`` are exact values to remove wherever they appear (also URL-quoted), for
    messages whose shape we do not control, such as a database driver's error text; values
    shorter than ``MIN_SECRET`` characters are only masked where a pattern finds them.
    """
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _QUERY_PARAM.sub(
        lambda m: f"{m['head']}{MASK}" if is_secret_name(m["name"]) and m["value"] else m[0], text
    )
    return _HEADER_TEXT.sub(
        lambda m: f"{m['head']}{MASK}" if _HEADER_NAME.fullmatch(m["name"]) else m[0], text
    )


def mask_url(url: str) -> str:
    """A URL fit to print: password and secret query parameters replaced by ``***``."""
    return mask_secrets(url)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header values whose names look like credentials become ``***``."""
    return {k: MASK if is_secret_name(k) else v for k, v in headers.items()}


def mask_tree(value: Any) -> Any:
    """A copy of a parsed config (dicts, lists, strings) that is safe to store or print.

    Values under secret-looking keys become ``***``; every string is passed through
    :func:`mask_secrets` (URL passwords, secret query parameters).
    """
    if isinstance(value, Mapping):
        return {
            k: MASK
            if isinstance(k, str)
            and is_secret_name(k)
            and v not in (None, "")
            and not isinstance(v, Mapping | list)
            else mask_tree(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_tree(v) for v in value]
    if isinstance(value, str):
        return mask_secrets(value)
    return value
