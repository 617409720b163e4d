"""Framework adapters around the NumPy synthesizer core.

Import the one you need; this package itself imports neither framework, so it works without them:

- ``synthtumor.adapters.monai``: ``RandTumorSynthesisd`` (MONAI dictionary transform), needs the
  ``monai`` extra.
- ``synthtumor.adapters.torchio``: ``RandomTumorSynthesis`` (TorchIO random transform), needs the
  ``torchio`` extra.

``load_tumor_records`` decodes the per-sample JSON record that both transforms write;
``synthesize_step`` is the array-level step they (and the nnU-Net transform) call: skip rule,
HU check, seeding, in-place synthesis, record. Use it to wrap another framework the same way.
"""

from synthtumor.adapters._common import load_tumor_records, record_json, synthesize_step

__all__ = ["load_tumor_records", "record_json", "synthesize_step"]
