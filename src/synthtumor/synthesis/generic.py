"""The generic appearance preset: a good choice without fitting, from published ranges.

Not tuned to any data set; docs/realism.md gives the sources and says which numbers are ours.
"""

from __future__ import annotations

from .appearance import Appearance, AttenuationClass, Spread

#: Generic attenuation classes (our reading of the published appearance of liver tumors; the
#: numbers are assumptions within the published ranges, stated in docs/realism.md):
#: hypo: solid tumor tissue is ~15-45 HU below unenhanced liver and enhances to 20-60 % of it
#: (hypovascular metastases, most HCC in portal venous phase); iso: within +-8 HU unenhanced and
#: enhancing like liver (subtle tumors); hyper: slightly dark unenhanced, enhancing 1.3-1.8x
#: the liver (hypervascular); rim: hypo with a rim enhancing 30-70 % of the liver's enhancement.
GENERIC_CLASSES: tuple[AttenuationClass, ...] = (
    AttenuationClass("hypo", 0.70, Spread.of(15.0, 45.0), Spread.of(0.2, 0.6)),
    AttenuationClass("iso", 0.12, Spread.of(-6.0, 8.0), Spread.of(0.9, 1.1)),
    AttenuationClass("hyper", 0.08, Spread.of(0.0, 15.0), Spread.of(1.3, 1.8)),
    AttenuationClass("rim", 0.10, Spread.of(15.0, 45.0), Spread.of(0.2, 0.5),
                     Spread.of(0.3, 0.7)),
)

#: Heterogeneity: routine portal venous abdominal CT has ~10-20 HU image noise in the liver and
#: tumors are as heterogeneous or more (HU std ~10-30 HU); fine-grained (finest scale 0.5-2 mm),
#: two octaves. Margins from sharp (0.3 mm) to moderately infiltrative (2 mm); surfaces from
#: smooth to lobulated. Satellites: one large tumor in five.
GENERIC_APPEARANCE = Appearance(
    classes=GENERIC_CLASSES,
    std_hu=Spread.of(10.0, 30.0),
    corr_mm=Spread.of(0.5, 2.0),
    edge_mm=Spread.of(0.3, 2.0),
    irregularity=Spread.of(0.0, 0.2),
    lobe_scale=Spread.of(0.3, 0.8),
    satellite_probability=0.2,
)
