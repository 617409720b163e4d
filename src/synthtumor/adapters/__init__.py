"""Framework adapters around the NumPy synthesizer core.

Import the one you need; this package itself imports neither framework, so it works without them:

- ``synthtumor.adapters.monai``: ``RandTumorSynthesisd`` (MONAI dictionary transform), needs the
  ``monai`` extra.
- ``synthtumor.adapters.torchio``: ``RandomTumorSynthesis`` (TorchIO random transform), needs the
  ``torchio`` extra.

``load_tumor_records`` decodes the per-sample JSON record that both transforms write.
"""

from synthtumor.adapters._common import load_tumor_records, record_json

__all__ = ["load_tumor_records", "record_json"]
