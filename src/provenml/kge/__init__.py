"""S11: knowledge-graph embeddings and their three evaluation tasks (Lin et al., 2018).

Eleven scoring functions behind one interface (:func:`get_model`), sLCWA / KvsAll training
(:func:`train`), filtered link prediction with tie-aware ranks
(:func:`evaluate_link_prediction`), triple classification, a synthetic relation-pattern graph
and an offline distant-supervision relation-extraction task::

    from provenml.kge import TrainingConfig, evaluate_link_prediction, get_model, load_dataset
    from provenml.kge import train

    kg = load_dataset("nations")                       # PyKEEN's bundled copy, offline
    model = get_model("rotate", kg.num_entities, kg.num_relations, dim=32)
    train(model, kg.train, TrainingConfig(epochs=50, loss="nssa"))   # self-adversarial
    result = evaluate_link_prediction(model, kg.test, [kg.train, kg.valid, kg.test])
    print(result.metrics())                            # filtered MRR, Hits@k

Large graphs (int32 arrays, sparse embeddings, chunk-shared negatives, bounded-memory ranking)::

    from provenml.kge import SparseKGE, SparseTrainingConfig, evaluate_chunked
    from provenml.kge import KnownTriples, generate_large_kg, train_sparse

    g = generate_large_kg(num_entities=100_000, num_triples=1_000_000, seed=0)
    model = SparseKGE("complex", g.num_entities, g.num_relations, dim=64)
    stats = train_sparse(model, g.train, SparseTrainingConfig(epochs=1))
    print(stats.triples_per_second)
"""

from provenml.kge.data import TriplesDataset, load_dataset, load_openke, load_tsv
from provenml.kge.evaluation import (
    LinkPredictionResult,
    Ranks,
    count_ties,
    evaluate_link_prediction,
)
from provenml.kge.index import KnownTriples
from provenml.kge.large import LargeKG, generate_large_kg, stream_tsv
from provenml.kge.models import MODELS, KGEModel, get_model
from provenml.kge.relation_extraction import PCNN, Corpus, CorpusSpec, make_corpus
from provenml.kge.sparse import (
    SparseKGE,
    SparseTrainingConfig,
    evaluate_chunked,
    evaluate_sampled,
    sampled_bias,
    train_sparse,
)
from provenml.kge.synthetic import PATTERNS, PatternGraph, pattern_graph
from provenml.kge.training import (
    NegativeSampler,
    TrainingConfig,
    TrainingHistory,
    margin_ranking_loss,
    self_adversarial_loss,
    softplus_loss,
    train,
)
from provenml.kge.triple_classification import TripleClassifier, corrupt_triples

__all__ = [
    "MODELS",
    "PATTERNS",
    "PCNN",
    "Corpus",
    "CorpusSpec",
    "KGEModel",
    "KnownTriples",
    "LargeKG",
    "LinkPredictionResult",
    "NegativeSampler",
    "PatternGraph",
    "Ranks",
    "SparseKGE",
    "SparseTrainingConfig",
    "TrainingConfig",
    "TrainingHistory",
    "TripleClassifier",
    "TriplesDataset",
    "corrupt_triples",
    "count_ties",
    "evaluate_chunked",
    "evaluate_link_prediction",
    "evaluate_sampled",
    "generate_large_kg",
    "get_model",
    "load_dataset",
    "load_openke",
    "load_tsv",
    "make_corpus",
    "margin_ranking_loss",
    "pattern_graph",
    "sampled_bias",
    "self_adversarial_loss",
    "softplus_loss",
    "stream_tsv",
    "train",
    "train_sparse",
]
