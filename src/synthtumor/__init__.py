"""synthtumor: label-free liver tumor segmentation with synthetic tumors."""

# The one version source: pyproject.toml reads it, CITATION.cff repeats it (a test checks).

__version__ = "0.1.0"
