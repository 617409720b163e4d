"""synthtumor: label-free liver tumor segmentation with synthetic tumors."""

__version__ = "0.1.0"
