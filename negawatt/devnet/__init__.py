"""The local devnet: every role as its own process on one machine, and the end-to-end demo event."""
