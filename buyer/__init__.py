"""The buyer role: open, watch, cancel and list flexibility requests on FlexMarket (`negawatt buyer`).

Like every role it imports only `protocol`: it reaches the contracts through the deployment manifest
and the API over HTTP. Every argument is checked (`buyer.checks`) before any transaction is sent.
"""
