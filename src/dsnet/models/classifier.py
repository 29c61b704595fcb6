"""DSNet's encoder as an ImageNet classifier: the part that the authors pre-trained, plus a head.

The encoder is exactly what the authors' ImageNet checkpoints cover (their logs: 536 matching
tensors for the small models, 590 for Base): the stem, both branches, the three MSAFs and the
three compressions, i.e. every module of :class:`~dsnet.models.dsnet.DSNet` except SPASPP,
``layer1_a``, ``up8`` and the heads. The modules are taken from a freshly built segmentation
network, so names, shapes, order and initialisation are the segmentation model's by construction,
and a classifier checkpoint loads into a segmentation model with nothing to translate.

The head (our design; the authors published none): a 1x1 conv from the ``4P``-channel fused
1/8-resolution feature to ``head_channels`` (BN, ReLU), global average pooling, dropout and a
linear layer. The widening 1x1 conv is the usual answer to a narrow final feature (128 channels
for P=32; DDRNet's classifier does the same). Cost at 224x224 with 1000 classes (``dsnet info``):
P=32: 1.16 M parameters and 0.104 G MACs (0.103 G in the 28x28 conv, 1.0 M in the linear layer)
on top of the encoder's 5.55 M parameters and 4.38 G MACs, i.e. 17 % of the parameters and 2.3 %
of the compute; P=64: 1.29 M parameters and 0.21 G MACs on top of 32.6 M and 25.7 G.
``head_channels=0`` gives pooling + linear only (0.13 M parameters for P=32).
"""

from __future__ import annotations

from torch import Tensor, nn

from .dsnet import DSNet, DSNetArch

__all__ = ["ENCODER_MODULES", "ClassifierHead", "DSNetClassifier"]

#: Top-level modules of DSNet that form the pre-trainable encoder, in the segmentation model's order.
ENCODER_MODULES: tuple[str, ...] = (
    "conv1",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "layer5",
    "compression3",
    "compression4",
    "compression5",
    "layer3_",
    "layer4_",
    "layer5_",
    "aff1",
    "aff2",
    "aff3",
)


class ClassifierHead(nn.Module):
    """1x1 conv widening (optional) -> global average pool -> dropout -> linear."""

    def __init__(self, in_channels: int, num_classes: int, head_channels: int = 1024, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv: nn.Module | None = None
        width = in_channels
        if head_channels > 0:
            self.conv = nn.Sequential(
                nn.Conv2d(in_channels, head_channels, 1, bias=False),
                nn.BatchNorm2d(head_channels),
                nn.ReLU(inplace=True),
            )
            width = head_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is not None:
            x = self.conv(x)
        return self.fc(self.dropout(self.pool(x).flatten(1)))


class DSNetClassifier(nn.Module):
    """The DSNet encoder of ``arch`` followed by a :class:`ClassifierHead` (logits ``(N, num_classes)``).

    ``forward_features`` returns the fused spatial feature ``(N, 4P, H/8, W/8)`` that the
    segmentation network feeds to SPASPP, computed exactly as there.
    """

    input_multiple: int = 8

    def __init__(
        self,
        num_classes: int = 1000,
        arch: DSNetArch | None = None,
        head_channels: int = 1024,
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        arch = arch or DSNetArch()
        donor = DSNet(num_classes=1, arch=arch, aux_heads=False, in_channels=in_channels)
        for name in ENCODER_MODULES:
            self.add_module(name, getattr(donor, name))
        self.relu = nn.ReLU(inplace=False)
        self.arch = arch
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.head = ClassifierHead(4 * arch.planes, num_classes, head_channels, dropout)
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DSNetClassifier expects (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        if x.shape[0] == 1 and self.training:
            raise ValueError(
                "DSNetClassifier cannot train on a batch of 1 image (BatchNorm on the 1x1 pooled maps of "
                "MSAF); use at least 2 per device, SyncBatchNorm, or eval()"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        relu = self.relu
        x = relu(self.layer2(relu(self.layer1(self.conv1(x)))))  # 1/8
        spatial = self.layer3_(x)
        x = self.layer3(x)
        spatial = self.aff1(spatial, self.compression3(x))
        x = self.layer4(x)
        spatial = self.aff2(self.layer4_(relu(spatial)), self.compression4(x))
        spatial = self.layer5_(relu(spatial))
        x = relu(self.layer5(x))
        return relu(self.aff3(spatial, self.compression5(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))
