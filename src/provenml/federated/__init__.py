"""S5: MLLM-assisted federated learning on long-tailed, heterogeneous clients (Zhang et al.,
"MLLM-LLaVA-FL", WACV 2025, arXiv 2409.06067), on Flower.

Three stages, all extra compute on the server: web image-text pre-training with a dynamically
weighted distillation from a frozen visual encoder, ordinary federated fine-tuning, and a
global alignment ``CE(y, p) + beta * KL(q || p)`` on a small balanced set after each
aggregation, ``q`` the teacher's class distribution. The same round runs in one process
(``run_loop``) or as a Flower ``ServerApp`` / ``ClientApp`` (``run_flower_simulation``)::

    from provenml.federated import ARMS, FLSettings, build_federation, run_loop, test_scores

    settings = FLSettings(rounds=15)
    fed = build_federation(settings, seed=0)          # ShapesWorld data + offline teacher
    outcome = run_loop(ARMS.get("full"), fed)         # or run_flower_simulation("full", ...)
    print(test_scores(ARMS.get("full"), fed, outcome.state))  # balanced, many, medium, few

The reproductions live in :mod:`provenml.federated.experiments` (``federated.longtail``,
``federated.faults``, ``federated.heterogeneity``).
"""

from provenml.federated.data import (
    SHAPES,
    FederatedData,
    ShapeImages,
    class_splits,
    dirichlet_partition,
    long_tail_counts,
    make_federated_data,
    render_shapes,
)
from provenml.federated.engine import (
    ARMS,
    FAILURE_MODES,
    Arm,
    DataSettings,
    Federation,
    FLSettings,
    RunOutcome,
    build_federation,
    client_update,
    failure_plan,
    run_loop,
    sample_clients,
    server_update,
    teacher_scores,
    test_scores,
    tiny_settings,
)
from provenml.federated.flower import client_app, run_flower_simulation, server_app
from provenml.federated.localhost import run_localhost_deployment
from provenml.federated.methods import (
    AlignSettings,
    LocalSettings,
    PretrainSettings,
    align,
    alignment_loss,
    evaluate,
    fedavg,
    local_train,
    logit_adjusted,
    pretrain,
)
from provenml.federated.models import ConvEncoder, FLModel, VisualEncoder
from provenml.federated.teacher import (
    Annotator,
    LlavaTeacher,
    OfflineTeacher,
    Teacher,
    TeacherSettings,
    build_offline_teacher,
    check_teacher_classes,
    embed_sentences,
)

__all__ = [
    "ARMS",
    "FAILURE_MODES",
    "SHAPES",
    "AlignSettings",
    "Annotator",
    "Arm",
    "ConvEncoder",
    "DataSettings",
    "FLModel",
    "FLSettings",
    "FederatedData",
    "Federation",
    "LlavaTeacher",
    "LocalSettings",
    "OfflineTeacher",
    "PretrainSettings",
    "RunOutcome",
    "ShapeImages",
    "Teacher",
    "TeacherSettings",
    "VisualEncoder",
    "align",
    "alignment_loss",
    "build_federation",
    "build_offline_teacher",
    "check_teacher_classes",
    "class_splits",
    "client_app",
    "client_update",
    "dirichlet_partition",
    "embed_sentences",
    "evaluate",
    "failure_plan",
    "fedavg",
    "local_train",
    "logit_adjusted",
    "long_tail_counts",
    "make_federated_data",
    "pretrain",
    "render_shapes",
    "run_flower_simulation",
    "run_localhost_deployment",
    "run_loop",
    "sample_clients",
    "server_app",
    "server_update",
    "teacher_scores",
    "test_scores",
    "tiny_settings",
]
