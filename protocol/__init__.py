"""What every negawatt role agrees on: typed messages and signing, the rewards Merkle tree,
units, the deployment manifest and contract handles, and settings."""
