"""negawatt's command line and developer tooling (deployment); the roles live in protocol/, oracle/,
node/ and api/."""
