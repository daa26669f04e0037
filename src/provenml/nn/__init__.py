"""Shared networks: an MLP, byte-level LMs, GCN / GIN encoders and graph pooling (shared layer).

Any system may import these; none of them imports a system. PyG is loaded only when a graph
encoder is built or a pool is called::

    from provenml.nn import GINEncoder, mlp, sum_pool

    encoder = GINEncoder(in_dim=1, hidden=32, num_layers=3)   # out_dim = 3 * 32
    head = mlp(encoder.out_dim, [64], 10)                      # Linear-ReLU-Linear
    logits = head(encoder(data.x, data.edge_index, data.batch))
"""

from provenml.nn.bytelm import ByteNGramMLP, ByteTransformer
from provenml.nn.device import module_device
from provenml.nn.gnn import GCNEncoder, GINEncoder
from provenml.nn.mlp import mlp
from provenml.nn.pooling import POOLS, Pool, mean_pool, pool, sum_pool

__all__ = [
    "POOLS",
    "ByteNGramMLP",
    "ByteTransformer",
    "GCNEncoder",
    "GINEncoder",
    "Pool",
    "mean_pool",
    "mlp",
    "module_device",
    "pool",
    "sum_pool",
]
