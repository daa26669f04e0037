"""The explanation methods, one file each, all behind :class:`~provenml.explain.ExplainerMethod`.

:data:`EXPLAINERS` finds a method's class by its ``name`` (``EXPLAINERS.build("gnnexplainer",
epochs=100)``; an unknown name suggests the closest ones).
"""

from provenml.core.registry import Registry
from provenml.explain.base import ExplainerMethod
from provenml.explain.methods.gnnexplainer import GNNExplainer
from provenml.explain.methods.gradcam import GradCAM
from provenml.explain.methods.integrated_gradients import IntegratedGradients
from provenml.explain.methods.pgexplainer import PGExplainer
from provenml.explain.methods.pgm_explainer import PGMExplainer
from provenml.explain.methods.random import RandomExplainer
from provenml.explain.methods.saliency import SaliencyExplainer
from provenml.explain.methods.subgraphx import SubgraphX

#: Every method by its ``name``, in the benchmark's order.
EXPLAINERS: Registry[type[ExplainerMethod]] = Registry("explainer")
for _method in (
    RandomExplainer,
    SaliencyExplainer,
    IntegratedGradients,
    GradCAM,
    GNNExplainer,
    PGExplainer,
    SubgraphX,
    PGMExplainer,
):
    EXPLAINERS.register(_method.name, _method)
del _method

__all__ = [
    "EXPLAINERS",
    "GNNExplainer",
    "GradCAM",
    "IntegratedGradients",
    "PGExplainer",
    "PGMExplainer",
    "RandomExplainer",
    "SaliencyExplainer",
    "SubgraphX",
]
