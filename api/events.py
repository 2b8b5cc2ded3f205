"""Decoding the negawatt contracts' logs: the API reads them with protocol.events.

`ChainLog` is the API's name for `protocol.events.ChainEvent` (the projection and its tests use it).
"""

from __future__ import annotations

from protocol.events import JS_SAFE, ChainEvent, EventDecoder, json_safe, plain

ChainLog = ChainEvent

__all__ = ["JS_SAFE", "ChainLog", "EventDecoder", "json_safe", "plain"]
