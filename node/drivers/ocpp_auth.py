"""HTTP Basic authentication of a charge point (OCPP security profiles 1 and 2).

The rule (OCPP 1.6 security whitepaper, OCPP 2.0.1 part 2): the charge point sends
`Authorization: Basic base64(<charge point id>:<password>)` on the websocket upgrade request; the
username must be its own id (the last segment of the URL path) and the password 16 to 40 bytes.
The Central System answers 401 before the upgrade to a request without credentials or with wrong
ones. Passwords are compared in constant time (`hmac.compare_digest` on digests, so not even the
length leaks); one configured as a hash (`pbkdf2_sha256$<iterations>$<salt>$<digest>`, base64) is
checked off the event loop. Make one with

    python -m node.drivers.ocpp_auth            # reads the password on stdin, prints its hash
    python -m node.drivers.ocpp_auth --generate # a random 32-character password, then its hash
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import sys

MIN_PASSWORD_BYTES, MAX_PASSWORD_BYTES = 16, 40
HASH_SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 200_000


def check_length(password: bytes, where: str) -> bytes:
    """`password` if it is 16..40 bytes long (OCPP's rule for Basic auth passwords); ValueError otherwise."""
    if not MIN_PASSWORD_BYTES <= len(password) <= MAX_PASSWORD_BYTES:
        raise ValueError(f"{where}: an OCPP password is {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes long, "
                         f"this one is {len(password)}")
    return password


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """The `password_hash` value for node.toml: PBKDF2-HMAC-SHA256 with a random 16-byte salt."""
    check_length(password.encode(), "the password")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def parse_hash(text: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a `password_hash`; ValueError saying the expected format."""
    parts = text.split("$")
    try:
        if len(parts) != 4 or parts[0] != HASH_SCHEME:
            raise ValueError
        iterations = int(parts[1])
        salt, digest = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError(f"must be {HASH_SCHEME}$<iterations>$<salt base64>$<digest base64> "
                         "(python -m node.drivers.ocpp_auth makes one)") from None
    if not 1_000 <= iterations <= 10_000_000 or len(salt) < 8 or len(digest) != 32:
        raise ValueError("needs 1000..10000000 iterations, a salt of at least 8 bytes and a 32-byte digest")
    return iterations, salt, digest


class PasswordCheck:
    """One charge point's password, kept only as a digest, checked in constant time."""

    def __init__(self, *, secret: bytes | None = None, hashed: str | None = None):
        if (secret is None) == (hashed is None):
            raise ValueError("give the password or its hash")
        self._pbkdf2 = parse_hash(hashed) if hashed is not None else None
        # The SHA-256 of the password once known (at once for a secret; after the first success for a hash),
        # so a reconnecting charger costs one hash, not a PBKDF2 run.
        self._known = hashlib.sha256(secret).digest() if secret is not None else None

    async def verify(self, password: bytes) -> bool:
        """Whether `password` is this charge point's (a PBKDF2 run goes to a worker thread)."""
        quick = hashlib.sha256(password).digest()
        if self._known is not None and hmac.compare_digest(quick, self._known):
            return True
        if self._pbkdf2 is None:
            return False
        iterations, salt, digest = self._pbkdf2
        computed = await asyncio.to_thread(hashlib.pbkdf2_hmac, "sha256", password, salt, iterations)
        if hmac.compare_digest(computed, digest):
            self._known = quick
            return True
        return False


def parse_basic(header: str) -> tuple[str, bytes] | None:
    """(username, password) of an `Authorization: Basic ...` header value; None if it is not one."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return username.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def basic_header(username: str, password: str | bytes) -> str:
    """The `Authorization` header value a charge point sends (for clients and tests)."""
    secret = password.encode() if isinstance(password, str) else password
    return "Basic " + _b64(username.encode() + b":" + secret)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def main(argv: list[str] | None = None) -> None:
    """Print the `password_hash` of a password read on stdin (or of a generated one, printed first)."""
    parser = argparse.ArgumentParser(prog="python -m node.drivers.ocpp_auth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generate", action="store_true", help="generate a random 32-character password")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    args = parser.parse_args(argv)
    if args.generate:
        password = secrets.token_urlsafe(24)  # 32 characters
        sys.stdout.write(f"password:      {password}\n")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    try:
        sys.stdout.write(f"password_hash = \"{hash_password(password, args.iterations)}\"\n")
    except ValueError as error:
        raise SystemExit(str(error)) from None


if __name__ == "__main__":
    main()
