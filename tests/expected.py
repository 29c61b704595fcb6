"""Every exact size/cost figure the tests assert, in one place, so a change to one is a reviewed change.

Sources: ../shared/reference/DSNET_REFERENCE.md section 5 (the authors' model measured with thop) and the
paper's tables. Do not "fix" a figure to make a test pass: these are the authors' numbers.
"""

from __future__ import annotations

from typing import Final

# Parameters of the authors' model with 19 classes: (inference model without the auxiliary heads,
# training model with them). Reference section 5.1.
PARAMS: Final[dict[str, tuple[int, int]]] = {
    "dsnet_head64": (6_551_315, 6_739_545),
    "dsnet_head128": (6_755_539, 6_943_769),
    "dsnet_head256": (9_990_611, 10_178_841),
    "dsnet_base": (37_461_395, 38_206_457),
}

# Paper GFLOPs (thop MACs / 2**30, rounded to 2 decimals) of the inference model, 19 classes, 1024x2048.
PAPER_GFLOPS_CITYSCAPES: Final[dict[str, float]] = {
    "dsnet_head64": 208.43,
    "dsnet_head128": 226.62,
    "dsnet_head256": 379.41,
    "dsnet_base": 1222.94,
}
CITYSCAPES_SIZE: Final[tuple[int, int]] = (1024, 2048)

# dsnet_head128 at 1024x2048 by torch's FLOP counter: conv MACs / 1e9, rounded to 2 decimals, and the
# share of them in the context branch layer4 (reference: 35 %), as an open interval.
HEAD128_CONV_GMACS: Final[float] = 241.97
HEAD128_LAYER4_MAC_SHARE: Final[tuple[float, float]] = (0.34, 0.36)

# Reference section 5.2: head256 on ADE20K (150 classes, 512x512).
ADE20K_SIZE: Final[tuple[int, int]] = (512, 512)
ADE20K_NUM_CLASSES: Final[int] = 150
ADE20K_HEAD256_PARAMS: Final[int] = 10_024_278
ADE20K_HEAD256_PAPER_GFLOPS: Final[float] = 47.9  # rounded to 1 decimal

# BDD100K at 720x1280, head64 (19 classes).
BDD_SIZE: Final[tuple[int, int]] = (720, 1280)
BDD_HEAD64_PAPER_GFLOPS: Final[float] = 91.6  # rounded to 1 decimal

# Keys of the authors' ImageNet encoder checkpoint that match a small model (reference). Asserted in
# tests/test_checkpoint.py, which should import it from here.
IMAGENET_ENCODER_MATCHING_KEYS: Final[int] = 536

# The paper's own table for dsnet_head128 as the registry carries it: GFLOPs and millions of parameters.
PAPER_TABLE_HEAD128_GFLOPS: Final[float] = 226.6
PAPER_TABLE_HEAD128_PARAMS_M: Final[float] = 6.8
# The same count for DSNet-Base (reference logs: 590 of the 604 entries of the Base ImageNet file match).
IMAGENET_ENCODER_MATCHING_KEYS_BASE: Final[int] = 590
# Hand count of dsnet_head128's decoder (19 classes, no aux heads): SPASPP(128, 128, 128) = 4 x (3x3 128->128
# conv 147,456 + BN 256) + pooling 1x1 16,384 + 256 + process1 16,384 + 256 + process2 1x1 640->128 81,920 + 256
# + process3 3x3 with bias 147,584 + 256 = 854,144; layer1_a (BasicBlock 32->32) 2 x (9,216 + 64) = 18,560;
# up8 (3x3 128->128 + BN) 147,712; lastlayer 3x3 160->128 184,320 + BN 256 + 1x1 128->19 with bias 2,451 =
# 187,027. Decoder 1,207,443 of 6,755,539: the encoder holds the other 5,548,096 (82.13 %).
HEAD128_DECODER_PARAMS: Final[int] = 1_207_443
