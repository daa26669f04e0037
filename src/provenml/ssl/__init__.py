"""S7: DenseCL, dense contrastive self-supervised pre-training (Wang et al., CVPR 2021,
arXiv 2011.09157), with MoCo-v2 in the same code path (``dense_weight=0``).

Pre-train any backbone that returns a feature map on your own images, then hand the backbone
to a downstream model::

    from provenml.ssl import DenseCL, SmallResNet, TwoViewAugment, extract_backbone
    from provenml.ssl import load_image_folder, pretrain

    images = load_image_folder("my_photos/", size=64)          # (N, 3, 64, 64) uint8
    model = DenseCL(SmallResNet(), image_size=32, queue_size=4096, momentum=0.99)
    history = pretrain(model, images, steps=2000, batch_size=64,
                       augment=TwoViewAugment(crop_size=32))
    backbone = extract_backbone(model)                         # nn.Module -> (B, C, h, w)

``MoCoV2(backbone, ...)`` is the baseline with the same interface. The procedural scenes
(:func:`multi_object_scenes`) and the evaluation protocols (:func:`evaluate_backbone`) are
those of ``provenml reproduce ssl.dense_transfer``.
"""

from provenml.ssl.augment import (
    CropBoxes,
    TwoViewAugment,
    cell_boxes,
    color_jitter,
    correspondence_overlap,
    crop_and_resize,
    gaussian_blur,
    random_resized_boxes,
)
from provenml.ssl.backbones import (
    SmallResNet,
    SplitBatchNorm,
    extract_backbone,
    feature_map_backbone,
    feature_map_shape,
)
from provenml.ssl.evaluation import (
    FCN,
    DenseScore,
    FrozenFeatures,
    extract_features,
    fcn_finetune_miou,
    knn_accuracy,
    miou_from_confusion,
    probe_miou,
)
from provenml.ssl.folder import load_image_folder
from provenml.ssl.methods import (
    ContrastiveOutput,
    DenseCL,
    DenseHead,
    GlobalHead,
    KeyQueue,
    MoCoV2,
    dense_correspondence,
    info_nce,
)
from provenml.ssl.pretrain import PretrainHistory, pretrain
from provenml.ssl.scenes import (
    CLASS_NAMES,
    SHAPES,
    SceneSet,
    multi_object_scenes,
    single_object_scenes,
)
from provenml.ssl.transfer import (
    EvaluationProtocol,
    TransferScores,
    evaluate_backbone,
    loss_fell,
    measure_correspondence,
)

__all__ = [
    "CLASS_NAMES",
    "FCN",
    "SHAPES",
    "ContrastiveOutput",
    "CropBoxes",
    "DenseCL",
    "DenseHead",
    "DenseScore",
    "EvaluationProtocol",
    "FrozenFeatures",
    "GlobalHead",
    "KeyQueue",
    "MoCoV2",
    "PretrainHistory",
    "SceneSet",
    "SmallResNet",
    "SplitBatchNorm",
    "TransferScores",
    "TwoViewAugment",
    "cell_boxes",
    "color_jitter",
    "correspondence_overlap",
    "crop_and_resize",
    "dense_correspondence",
    "evaluate_backbone",
    "extract_backbone",
    "extract_features",
    "fcn_finetune_miou",
    "feature_map_backbone",
    "feature_map_shape",
    "gaussian_blur",
    "info_nce",
    "knn_accuracy",
    "load_image_folder",
    "loss_fell",
    "measure_correspondence",
    "miou_from_confusion",
    "multi_object_scenes",
    "pretrain",
    "probe_miou",
    "random_resized_boxes",
    "single_object_scenes",
]
