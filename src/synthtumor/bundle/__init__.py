"""MONAI bundle export of a trained checkpoint."""
