"""The explanation methods, one file each, all behind :class:`~provenml.explain.ExplainerMethod`."""

from provenml.explain.methods.gnnexplainer import GNNExplainer
from provenml.explain.methods.gradcam import GradCAM
from provenml.explain.methods.integrated_gradients import IntegratedGradients
from provenml.explain.methods.pgexplainer import PGExplainer
from provenml.explain.methods.pgm_explainer import PGMExplainer
from provenml.explain.methods.random import RandomExplainer
from provenml.explain.methods.saliency import SaliencyExplainer
from provenml.explain.methods.subgraphx import SubgraphX

__all__ = [
    "GNNExplainer",
    "GradCAM",
    "IntegratedGradients",
    "PGExplainer",
    "PGMExplainer",
    "RandomExplainer",
    "SaliencyExplainer",
    "SubgraphX",
]
