"""The `[openadr]` table of node.toml: the external OpenADR 3 VTN the node serves as a VEN.

    [openadr]
    url = "https://vtn.utility.example/openadr3"   # the VTN's base URL (tokens found via GET /auth/server)
    client_id = "node-17"
    client_secret_file = "keys/vtn-secret.txt"     # or client_secret = "..." (a file keeps it out of node.toml)
    program = "residential-flex"                   # the programme's name, or program_id = "..."
    poll_seconds = 30

The rule: the table is validated at start with every field bounded, and a bad one is a ConfigError
naming the field; the secret is read from its file at start (one line, at most 512 characters).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

MAX_SECRET_CHARS = 512


class OpenAdrConfig(BaseModel):
    """Where the utility's VTN is and who the node is there."""

    model_config = {"extra": "forbid"}

    url: str = Field(max_length=2_000, pattern=r"^https?://[^\s]+$", description="the VTN's base URL")
    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str | None = Field(None, min_length=1, max_length=MAX_SECRET_CHARS, repr=False)
    client_secret_file: Path | None = None
    program: str | None = Field(None, min_length=1, max_length=128, description="the programme's name")
    program_id: str | None = Field(None, min_length=1, max_length=128, description="or its id")
    ven_name: str | None = Field(None, min_length=1, max_length=128,
                                 description="the VEN's name at the VTN (default: the client id)")
    resource_name: str = Field("site", min_length=1, max_length=128,
                               description="the name of the node's one resource (its premises)")
    poll_seconds: float = Field(30, ge=1, le=3_600)
    timeout_seconds: float = Field(10, gt=0, le=120)
    max_response_bytes: int = Field(1_048_576, ge=4_096, le=16_777_216,
                                    description="a larger answer is skipped, not parsed")
    max_pages: int = Field(20, ge=1, le=1_000, description="pages of 50 events read per poll, at most")

    @model_validator(mode="after")
    def _one_secret_one_program(self) -> OpenAdrConfig:
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("give exactly one of client_secret and client_secret_file")
        if (self.program is None) == (self.program_id is None):
            raise ValueError("give exactly one of program (its name) and program_id")
        return self

    def secret(self) -> str:
        """The client secret (read from its file when one is named); ValueError saying what is wrong."""
        if self.client_secret is not None:
            return self.client_secret
        path = self.client_secret_file
        try:
            text = path.read_text(encoding="utf-8") if path.stat().st_size <= 4 * MAX_SECRET_CHARS else None
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"openadr.client_secret_file {path}: cannot read it ({error})") from None
        secret = (text or "").strip()
        if not secret or len(secret) > MAX_SECRET_CHARS or "\n" in secret:
            raise ValueError(f"openadr.client_secret_file {path}: needs one line of 1 to {MAX_SECRET_CHARS} "
                             "characters")
        return secret
