"""The one place that decides what is secret, and how a secret is shown.

A secret header or query value is replaced by `[REDACTED]` plus a short fingerprint
(the first 8 hex digits of its SHA-256), so a person can tell two keys apart without
being able to recover either. Everything stored, logged or shown passes through here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote, unquote_plus

REDACTED = "[REDACTED]"

_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "x-auth-token",
    }
)
_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "credentials",
        "auth",
        "signature",
        "sig",
        "session",
        "cookie",
    }
)
_SECRET_ENDINGS = ("key", "token", "secret", "password")
_WORD_SPLIT = re.compile(r"[-_.\s]+")


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for a header or query parameter whose name says it holds a key, token or secret.

    Names are split into words so that `x-api-key`, `access_token` and `apiKey` count, while
    counters such as `max_tokens` or `x-ratelimit-remaining-tokens` do not.
    """
    lowered = name.lower()
    if lowered in _SECRET_HEADERS:
        return True
    return any(
        word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS)
        for word in _WORD_SPLIT.split(lowered)
    )


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def redact_value(value: str) -> str:
    return f"{REDACTED} sha256:{fingerprint(value)}" if value else REDACTED


def redact_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Headers as a dict with lower-case names, secrets redacted, repeated names joined."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        shown = redact_value(value) if is_secret_name(key) else value
        result[key] = f"{result[key]}, {shown}" if key in result else shown
    return result


def redact_query(query: str) -> str:
    """A query string with the values of secret-looking parameters redacted.

    Parameters are rewritten one by one, so everything else keeps its exact encoding.
    """
    if not query:
        return ""
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, sep, value = part.partition("=")
        if sep and is_secret_name(unquote_plus(name)):
            parts[index] = f"{name}={quote(redact_value(unquote_plus(value)), safe='[]:')}"
    return "&".join(parts)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Remove known secret values from free text (e.g. an upstream error that echoes a key)."""
    return scrub_text(text, [s for s in secrets if len(s) >= 8])


HIDDEN = "***"
_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)$", re.DOTALL)
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(
    r"(?<![\w])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE
)


def hide_database_password(dsn: str) -> str:
    """A database URL or libpq key=value DSN with every password shown as `***`.

    Covers `scheme://user:password@host` (a password holding `@` too: the user part ends at
    the last `@` of the authority), `?password=` in the query, and `password=...` /
    `password='quoted value'` in the key=value form.
    """
    match = _URL_USERINFO.match(dsn.strip())
    if match is None:
        return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + HIDDEN, dsn)
    rest = match.group("rest")
    authority_end = len(rest)
    for mark in ("?", "#"):
        index = rest.find(mark)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}{colon and ':' + HIDDEN}@{host}"
    return match.group("scheme") + authority + _QUERY_PASSWORD.sub(r"\1" + HIDDEN, tail)


def url_has_credentials(url: str) -> bool:
    """True when a URL carries `user[:password]@` before its host."""
    match = _URL_USERINFO.match(url.strip())
    if match is None:
        return False
    authority = re.split(r"[/?#]", match.group("rest"), maxsplit=1)[0]
    return "@" in authority


def _hex_class(byte: int) -> str:
    """`%2F`-style hex for a byte, matching either letter case: `2[fF]`."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in f"{byte:02X}")


def _encodings_of(char: str) -> list[str]:
    """Regex alternatives for one character as a provider may echo it back.

    The character itself; URL-encoded (`%5F`, `%5f`, each UTF-8 byte); `+` for a space;
    JSON-escaped (`\\u005f`, `\\/`, `\\"`, `\\\\`).
    """
    options = [re.escape(char)]
    options.append("".join("%" + _hex_class(b) for b in char.encode("utf-8")))
    code = ord(char)
    if code <= 0xFFFF:
        options.append(r"\\u" + "".join(_hex_class(b) for b in code.to_bytes(2, "big")))
    if char == " ":
        options.append(r"\+")
    if char in '/"\\':
        options.append(re.escape("\\" + char))
    return options


@lru_cache(maxsize=256)
def secret_pattern(secret: str) -> re.Pattern[str]:
    """Matches `secret` written in any mix of the encodings a provider plausibly echoes."""
    return re.compile("".join(f"(?:{'|'.join(_encodings_of(c))})" for c in secret))


@lru_cache(maxsize=256)
def secret_bytes_pattern(secret: str) -> re.Pattern[bytes]:
    """`secret_pattern` for bytes (a body as stored); non-ASCII characters as UTF-8."""
    return re.compile(secret_pattern(secret).pattern.encode("utf-8"))


@lru_cache(maxsize=256)
def _anchor(secret: str) -> str:
    """The secret's longest run of letters and digits: every encoding above keeps it as is.

    Checking for it first (a plain substring search) spares the regex scan of nearly every
    body, which holds no secret at all.
    """
    runs = re.findall(r"[A-Za-z0-9]+", secret)
    return max(runs, key=len) if runs else ""


class SecretSet:
    """The secrets of one record, ready to scrub many texts and bodies.

    Longer secrets go first, so `Bearer+sk-...` goes whole rather than leaving `Bearer+`.
    The redacted forms hold no backslash, so they are literal replacements.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._entries = [(s, _anchor(s), redact_value(s)) for s in ordered]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def text(self, text: str) -> str:
        for secret, anchor, shown in self._entries:
            if len(anchor) < 4 or anchor in text:
                text = secret_pattern(secret).sub(shown, text)
        return text

    def bytes(self, data: bytes) -> bytes:
        for secret, anchor, shown in self._entries:
            if len(anchor) < 4 or anchor.encode() in data:
                data = secret_bytes_pattern(secret).sub(shown.encode("utf-8"), data)
        return data


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret, in any echoed encoding, replaced by its redacted form."""
    return SecretSet(secrets).text(text)


def scrub_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """`scrub_text` for bytes."""
    return SecretSet(secrets).bytes(data)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|$)', re.DOTALL)
_JSON_COLON = re.compile(rb"\s*:\s*")
# The end of every key: a closing quote, then a colon.
_KEY_END = re.compile(rb'"\s*:')


def redact_json_fields(body: bytes) -> tuple[bytes, list[str]]:
    """A JSON body with the string values of secret-named fields redacted, at any depth.

    Fields are judged by `is_secret_name`, as headers are (`api_key`, `apiKey`, `token`,
    `password`, ... but not `max_tokens`). The rest of the body keeps its exact bytes. A body
    cut short (a preview) is handled too: a value cut in the middle is redacted as it stands.
    Returns the body and the values found, so their echoes can be scrubbed as well.
    """
    if not _may_hold_secret_fields(body):
        return body, []
    pieces: list[bytes] = []
    found: list[str] = []
    position = 0
    strings = _JSON_STRING.finditer(body)
    for token in strings:
        colon = _JSON_COLON.match(body, token.end())
        if colon is None or not is_secret_name(_json_text(token.group())):
            continue
        value = _JSON_STRING.match(body, colon.end())
        if value is None:
            continue
        secret = _json_text(value.group())
        pieces += [body[position : value.start()], json.dumps(redact_value(secret)).encode()]
        position = value.end()
        found.append(secret)
        next(strings, None)  # the value itself is not a key
    if not found:
        return body, []
    pieces.append(body[position:])
    return b"".join(pieces), found


def redact_body_fields(
    body: bytes, content_type: str | None, content_encoding: str | None = None
) -> tuple[bytes, list[str]]:
    """`redact_json_fields` for a body that is JSON as stored (not compressed); else as is."""
    if not is_json_body(content_type, content_encoding):
        return body, []
    return redact_json_fields(body)


def is_json_body(content_type: str | None, content_encoding: str | None = None) -> bool:
    return "json" in (content_type or "").lower() and not content_encoding


def _may_hold_secret_fields(body: bytes) -> bool:
    """False when no key is secret-named (most bodies): spares the exact walk below.

    Each key is read back from its closing quote to its opening one; a key holding a
    backslash (an escape) cannot be read that way, so it counts as possibly secret.
    """
    for end in _KEY_END.finditer(body):
        start = body.rfind(b'"', 0, end.start())
        if start == -1:
            return True
        key = body[start + 1 : end.start()]
        if key.endswith(b"\\") or b"\\" in key or is_secret_name(key.decode("utf-8", "replace")):
            return True
    return False


def _json_text(token: bytes) -> str:
    """The text of a JSON string token; its raw inside when it does not parse (cut short)."""
    try:
        text = json.loads(token)
    except ValueError:
        return token.strip(b'"').decode("utf-8", "replace")
    return text if isinstance(text, str) else ""
