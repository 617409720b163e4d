"""nnU-Net v2 integration: a trainer with on-the-fly tumor synthesis, and dataset export."""
