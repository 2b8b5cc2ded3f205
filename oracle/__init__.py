"""The oracle role: verified meter ingest, baselines, deterministic settlement and k-of-n attestation."""
