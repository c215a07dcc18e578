"""Networks: the ResNet encoder, the resnetext decoder, and the whole NovumModel."""
from novum.model.backbone import NovumBackbone, ResNetExt, resnet_to_extractor_keys
from novum.model.novum_model import NovumModel, preprocess_bgr

__all__ = ["NovumBackbone", "ResNetExt", "NovumModel", "preprocess_bgr", "resnet_to_extractor_keys"]
