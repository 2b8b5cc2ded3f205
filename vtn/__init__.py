"""negawatt's OpenADR 3.1.0 VTN facade: a DSO's Business Logic client buys flexibility through
programs and events, external VENs bring their resources in as sites (see vtn/README.md)."""
