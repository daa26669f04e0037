"""Offline data shared by several systems: generated with a seed or shipped with Python/pip.

* :mod:`provenml.data.text`: byte-level corpora (the standard library's source, a text file);
* :mod:`provenml.data.graphs`: synthetic graphs with ground-truth motifs (BA-Shapes,
  BA-Community, Tree-Cycles, Tree-Grid, BA-2Motifs); PyG is imported when one is generated.

::

    from provenml.data import ba_shapes, stdlib_corpus
    corpus = stdlib_corpus()                  # ByteCorpus: uint8 train / valid streams
    graph = ba_shapes(seed=0).data            # a torch_geometric Data with edge_gt / node_gt
    from provenml.data.graphs import load_dataset
    motifs = load_dataset("ba_2motifs", seed=0, num_graphs=200)
"""

from provenml.data.graphs import (
    GroundTruthDataset,
    add_noise_edges,
    ba_2motifs,
    ba_community,
    ba_shapes,
    tree_cycles,
    tree_grid,
)
from provenml.data.text import ByteCorpus, load_text_file, stdlib_corpus

__all__ = [
    "ByteCorpus",
    "GroundTruthDataset",
    "add_noise_edges",
    "ba_2motifs",
    "ba_community",
    "ba_shapes",
    "load_text_file",
    "stdlib_corpus",
    "tree_cycles",
    "tree_grid",
]
