"""Label ids and nominal Hounsfield units of the phantom's tissues."""

from __future__ import annotations

__all__ = ["ORGANS", "HU"]

#: Label ids of ``Phantom.labels``.
ORGANS: dict[int, str] = {
    0: "background",  # air outside the body and lung bases (bowel gas is 8)
    1: "liver",  # parenchyma, vessels excluded
    2: "vessels",  # enhanced portal / hepatic veins inside the liver
    3: "kidneys",  # cortex and medulla (renal sinus fat is 7)
    4: "spleen",
    5: "bone",  # spine (vertebral bodies, posterior arches) and ribs
    6: "muscle",  # abdominal wall, paraspinal muscles, psoas, diaphragm
    7: "fat",  # subcutaneous, visceral, renal sinus
    8: "soft_tissue",  # the rest: bowel, stomach, pancreas, gallbladder, aorta, IVC, heart, discs
}

#: Nominal HU of each tissue before per-seed variation, blur and noise (portal venous phase).
HU: dict[str, float] = {
    "air": -1000.0,
    "fat_subcutaneous": -105.0,
    "fat_visceral": -95.0,
    "fat_renal_sinus": -70.0,
    "muscle": 50.0,
    "liver": 105.0,
    "portal_vein": 180.0,
    "hepatic_vein": 170.0,
    "aorta": 165.0,
    "ivc": 140.0,
    "kidney_cortex": 175.0,
    "kidney_medulla": 135.0,
    "spleen": 115.0,
    "pancreas": 95.0,
    "gallbladder": 10.0,
    "bowel_wall": 45.0,
    "bowel_content": 25.0,
    "stomach_fluid": 15.0,
    "colon_content": 0.0,
    "bone_cortex": 800.0,
    "bone_marrow": 250.0,
    "rib": 600.0,
    "disc": 90.0,
    "spinal_canal": 20.0,
    "lung": -850.0,
    "heart": 130.0,
}
