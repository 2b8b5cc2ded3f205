"""The shape of an acceptable EIP-4361 (Sign-In with Ethereum) message, checked before any parser runs.

Rule: a login message reaches the siwe library only after a linear-time check has found it bounded
and shaped as EIP-4361 says, line by line: at most MAX_MESSAGE_CHARS printable ASCII characters in
at most MAX_LINES lines; the header line with the domain, the address line, a blank line, an
optional statement and a blank line, then the tagged fields in their fixed order (URI, Version,
Chain ID, Nonce, Issued At, and optionally Expiration Time, Not Before, Request ID, Resources), each
within its own size bound. The siwe library's ABNF parser is super-linear (a hostile 4,000-character
message cost seconds of CPU and hundreds of MB), so nothing unbounded or misshapen is handed to it.

A refusal says which line or field is wrong and how, and never repeats the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 2_048
MAX_DOMAIN_CHARS = 255
MAX_STATEMENT_CHARS = 512
MAX_URI_CHARS = 512
MAX_REQUEST_ID_CHARS = 128
MAX_RESOURCES = 8
MAX_LINES = 14 + MAX_RESOURCES

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
_TEXT = re.compile(r"[\x20-\x7e\n]*")
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]{0,15}"
_AUTHORITY = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]{1," + str(MAX_DOMAIN_CHARS) + "}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# EIP-4361: statement = *( reserved / unreserved / " " )
_STATEMENT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]{1," + str(MAX_STATEMENT_CHARS) + "}")
_URI = re.compile(_SCHEME + r":[\x21-\x7e]{1," + str(MAX_URI_CHARS) + "}")
_CHAIN_ID = re.compile(r"[0-9]{1,20}")
_NONCE = re.compile(r"[A-Za-z0-9]{8,64}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
                       r"(?:[Zz]|[+\-][0-9]{2}:[0-9]{2})")
_REQUEST_ID = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%]{0," + str(MAX_REQUEST_ID_CHARS) + "}")


class MessageShapeError(ValueError):
    """The message is not a bounded EIP-4361 message; the text says what is wrong (no input echoed)."""


@dataclass(frozen=True)
class MessageShape:
    """The fields the API checks before parsing: where, who, which chain and which nonce."""

    domain: str
    address: str
    chain_id: int
    nonce: str


def _field(line: str | None, tag: str, pattern: re.Pattern[str], what: str, number: int) -> str:
    prefix = f"{tag}: "
    if line is None or not line.startswith(prefix):
        raise MessageShapeError(f"line {number + 1}: expected the '{tag}:' field")
    value = line[len(prefix):]
    if not pattern.fullmatch(value):
        raise MessageShapeError(f"line {number + 1}: '{tag}' must be {what}")
    return value


def check_message(message: str) -> MessageShape:
    """Check `message` against the bounded EIP-4361 shape in linear time; MessageShapeError says
    what is wrong. Only a message that passes goes on to the siwe parser."""
    if len(message) > MAX_MESSAGE_CHARS:
        raise MessageShapeError(f"the message has {len(message)} characters; at most {MAX_MESSAGE_CHARS}")
    if message.count("\n") >= MAX_LINES:
        raise MessageShapeError(f"the message has more than {MAX_LINES} lines")
    if not _TEXT.fullmatch(message):
        raise MessageShapeError("the message must be printable ASCII lines separated by LF (no CR, tab or "
                                "non-ASCII characters)")
    lines = message.split("\n")
    header = lines[0]
    if not header.endswith(HEADER_SUFFIX):
        raise MessageShapeError(f"line 1 must end with '{HEADER_SUFFIX.strip()}'")
    authority = header[: -len(HEADER_SUFFIX)]
    scheme, separator, rest = authority.partition("://")
    if separator:
        if not re.fullmatch(_SCHEME, scheme):
            raise MessageShapeError("line 1: the scheme before '://' is not a URI scheme")
        authority = rest
    if not _AUTHORITY.fullmatch(authority):
        raise MessageShapeError(f"line 1: the domain must be an RFC 3986 authority of 1 to {MAX_DOMAIN_CHARS} "
                                "characters")
    if len(lines) < 9:
        raise MessageShapeError("the message is too short: it needs the header, address, URI, Version, "
                                "Chain ID, Nonce and Issued At lines")
    if not _ADDRESS.fullmatch(lines[1]):
        raise MessageShapeError("line 2 must be the address: 0x + 40 hex digits")
    if lines[2] != "":
        raise MessageShapeError("line 3 must be empty")
    at = 3
    if lines[at] != "":
        if not _STATEMENT.fullmatch(lines[at]):
            raise MessageShapeError(f"line 4: the statement must be 1 to {MAX_STATEMENT_CHARS} characters of "
                                    "letters, digits, spaces and URI punctuation")
        at += 1
        if lines[at] != "":
            raise MessageShapeError(f"line {at + 1} must be empty (after the statement)")
    at += 1

    def take(tag: str, pattern: re.Pattern[str], what: str) -> str:
        nonlocal at
        value = _field(lines[at] if at < len(lines) else None, tag, pattern, what, at)
        at += 1
        return value

    def optional(tag: str, pattern: re.Pattern[str], what: str) -> None:
        if at < len(lines) and lines[at].startswith(f"{tag}:"):
            take(tag, pattern, what)

    take("URI", _URI, f"an absolute URI of at most {MAX_URI_CHARS} characters")
    take("Version", re.compile("1"), "1")
    chain_id = take("Chain ID", _CHAIN_ID, "a decimal number of at most 20 digits")
    nonce = take("Nonce", _NONCE, "8 to 64 letters or digits")
    take("Issued At", _DATETIME, "an RFC 3339 date-time")
    optional("Expiration Time", _DATETIME, "an RFC 3339 date-time")
    optional("Not Before", _DATETIME, "an RFC 3339 date-time")
    optional("Request ID", _REQUEST_ID, f"at most {MAX_REQUEST_ID_CHARS} URI path characters")
    if at < len(lines) and lines[at] == "Resources:":
        at += 1
        first = at
        while at < len(lines) and lines[at].startswith("- "):
            if not _URI.fullmatch(lines[at][2:]):
                raise MessageShapeError(f"line {at + 1}: a resource must be an absolute URI of at most "
                                        f"{MAX_URI_CHARS} characters")
            at += 1
        if at == first or at - first > MAX_RESOURCES:
            raise MessageShapeError(f"'Resources:' must list 1 to {MAX_RESOURCES} '- <uri>' lines")
    if at != len(lines):
        raise MessageShapeError(f"line {at + 1} is not an EIP-4361 field in its place (the fields after "
                                "Issued At are Expiration Time, Not Before, Request ID, Resources, in that "
                                "order; nothing may follow them, not even an empty line)")
    return MessageShape(domain=authority, address=lines[1], chain_id=int(chain_id), nonce=nonce)
