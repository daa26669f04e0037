"""S11: knowledge-graph embeddings and their three evaluation tasks (Lin et al., 2018).

Eleven scoring functions behind one interface (:func:`get_model`), sLCWA / KvsAll training
(:func:`train`), filtered link prediction with tie-aware ranks
(:func:`evaluate_link_prediction`), triple classification, a synthetic relation-pattern graph
and an offline distant-supervision relation-extraction task.
"""

from provenml.kge.data import TriplesDataset, load_dataset, load_openke, load_tsv
from provenml.kge.evaluation import (
    LinkPredictionResult,
    Ranks,
    count_ties,
    evaluate_link_prediction,
)
from provenml.kge.index import KnownTriples
from provenml.kge.models import MODELS, KGEModel, get_model
from provenml.kge.training import (
    NegativeSampler,
    TrainingConfig,
    TrainingHistory,
    margin_ranking_loss,
    self_adversarial_loss,
    softplus_loss,
    train,
)

__all__ = [
    "MODELS",
    "KGEModel",
    "KnownTriples",
    "LinkPredictionResult",
    "NegativeSampler",
    "Ranks",
    "TrainingConfig",
    "TrainingHistory",
    "TriplesDataset",
    "count_ties",
    "evaluate_link_prediction",
    "get_model",
    "load_dataset",
    "load_openke",
    "load_tsv",
    "margin_ranking_loss",
    "self_adversarial_loss",
    "softplus_loss",
    "train",
]
