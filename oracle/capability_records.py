"""Capability records read back from finalized report documents: what caps each site's offers.

Each capability test's records travel in its request's `verification.capability` of the report that
settled it (oracle.capability_settlement). Finalized documents are the same on every oracle (their
digests and roots are on chain), so every oracle derives the same caps (protocol.capability.site_caps)
and clears alike. The records of the last CAPABILITY_EPOCHS finalized reports are read; a site whose
only passed test is older falls back to the probationary cap until it is tested again.
"""

from __future__ import annotations

from oracle.report_store import ReportStore
from protocol.capability import CapabilityRecord

CAPABILITY_EPOCHS = 1_000


def records_of_document(document) -> list[CapabilityRecord]:
    """The capability records of one report document (none in a report without a test)."""
    records = []
    for outcome in document.requests:
        verification = outcome.verification or {}
        for item in verification.get("capability") or []:
            records.append(CapabilityRecord.from_json(item))
    return records


def capability_records(store: ReportStore, latest_epoch: int) -> list[CapabilityRecord]:
    """Every record of the final reports of the last CAPABILITY_EPOCHS epochs up to `latest_epoch`."""
    records: list[CapabilityRecord] = []
    for epoch in range(latest_epoch, max(0, latest_epoch - CAPABILITY_EPOCHS), -1):
        document = store.final(epoch)
        if document is not None:
            records.extend(records_of_document(document))
    return records
