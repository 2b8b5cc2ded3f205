"""The home-gateway node: device drivers, metering, dispatch, outbox, claims."""
