"""Registry URLs: parsing with a one-line error, and hiding their secrets in every message and log line
(``url_secrets`` finds them as SQLAlchemy parses the URL; ``mask_password`` replaces them)."""
from __future__ import annotations

import sqlalchemy as sa

DEFAULT_URL = "sqlite:///pgu_results/registry.db"


def check_url(url: str) -> sa.engine.URL:
    """Parse ``url`` or raise a one-line ``ValueError``."""
    try:
        return sa.engine.make_url(url)
    except Exception:
        shown = mask_password(url, url_secrets(url))
        if "@" in shown and "***@" not in shown:  # too broken for the URL masks: hide all of its user part
            shown = "***@" + shown.rsplit("@", 1)[1]
        raise ValueError(f"registry URL {shown!r} is malformed; expected an SQLAlchemy URL such as "
                         f"{DEFAULT_URL} or postgresql://user@host/db") from None


def first_line(err, secrets: list[str] | None = None) -> str:
    return mask_password(str(err).splitlines()[0] if str(err) else type(err).__name__, secrets)


MIN_SECRET = 4  # shorter passwords are hidden inside URLs only (replacing "ab" in every message would garble it)


def url_secrets(url: str) -> list[str]:
    """The secrets in a database URL, as SQLAlchemy parses it: the password, a ``password=`` query
    value, and, for a password with an unescaped ``@`` (``user:p@ss@host``, which SQLAlchemy splits at
    the first ``@``) or ``?`` (``user:p?ss@host``, which starts the query), everything between ``user:``
    and the last ``@``. Each also percent-encoded; of at least ``MIN_SECRET`` characters."""
    import re
    from urllib.parse import quote, quote_plus

    found = []
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        parsed = None
    if parsed is not None:
        if parsed.password:
            found.append(str(parsed.password))
        value = parsed.query.get("password")
        found += [value] if isinstance(value, str) else list(value or ())
    scheme_to_last_at = r"[A-Za-z][A-Za-z0-9+.\-]*://(.*)@"
    authority = re.match(scheme_to_last_at, url.split("?", 1)[0])  # before the query, up to the last '@'
    authority = authority or re.match(scheme_to_last_at, url)  # no '@' before the first '?': a raw '?' in it
    if authority and ":" in authority.group(1):
        found.append(authority.group(1).split(":", 1)[1])
    found = [f for f in found if len(f) >= MIN_SECRET and not any(g != f and g.startswith(f + "@") for g in found)]
    return sorted({*found, *(quote(f, safe="") for f in found), *(quote_plus(f) for f in found)}, key=len,
                  reverse=True)


def mask_password(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret of ``secrets`` (``url_secrets``) replaced by ``***``, and the password of
    any other ``scheme://user:password@host`` URL or ``password=`` parameter in it hidden too."""
    import re

    for secret in secrets or ():
        text = text.replace(secret, "***")
    text = re.sub(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^\s]*@", r"\1***@", text)
    return re.sub(r"(password=)[^&\s'\"]*", r"\1***", text, flags=re.IGNORECASE)
