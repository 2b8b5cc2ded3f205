"""The negawatt dApp API: a chain and oracle indexer into SQL, and a REST + SSE service for dApps.

Modules: `settings` (configuration), `db` and `models` (the SQL mirror), `migrate` (Alembic),
`events` (log decoding), `projection` (events -> tables, with an undo journal for reorgs),
`indexer` (follows the chain), `documents` (verified oracle leaf sets), `reads` (queries of the
REST routes), `app` and `routes_*` (HTTP), `siwe_auth` (Sign-In with Ethereum sessions),
`ratelimit`, `problems`, `stream` (Server-Sent Events), `cli` (`negawatt api`).
"""
