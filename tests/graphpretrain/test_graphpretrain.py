"""Tests of provenml.graphpretrain and provenml.data.graph_domains."""

from __future__ import annotations

import dataclasses
import math

import networkx as nx
import numpy as np
import pytest
import torch
from scipy import stats as sps
from torch_geometric.data import Data

from provenml.core import ProvenmlError, get_experiment, run_experiment
from provenml.core.testing import smoke_run
from provenml.data import graph_domains as gd
from provenml.graphpretrain import (
    ADGCL,
    DownstreamTask,
    GraphCL,
    PackedGraphs,
    TopologyOnly,
    drop_edges,
    drop_nodes,
    finetune,
    holm,
    linear_probe,
    load_encoder,
    load_task,
    new_encoder,
    nt_xent,
    pretrain,
    save_encoder,
    subgraph,
    with_feature_input,
)
from provenml.graphpretrain import targets as T
from provenml.graphpretrain.model import encode
from provenml.graphpretrain.packed import check_packed
from provenml.graphpretrain.stats import compare_tasks, paired_p


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path_factory.getbasetemp() / "gp-cache"))


@pytest.fixture(scope="module")
def graphs() -> list[Data]:
    """A mix of domains, including disconnected and dense graphs."""
    out = gd.generate("road", 6, 0) + gd.generate("er", 6, 1) + gd.generate("trees", 6, 2)
    out += gd.generate("community", 6, 3) + gd.generate("citation", 6, 4)
    disconnected = gd.graph_from_networkx(nx.disjoint_union(nx.cycle_graph(5), nx.path_graph(4)))
    return [*out, disconnected]


@pytest.fixture(scope="module")
def packed(graphs) -> PackedGraphs:
    return PackedGraphs.from_data_list(graphs)


def _edge_set(data: Data) -> set[tuple[int, int]]:
    return {(int(u), int(v)) for u, v in data.edge_index.t().tolist()}


# -- packing ---------------------------------------------------------------------------------


def test_packing_round_trip_and_select(graphs, packed):
    check_packed(packed)
    assert packed.num_graphs == len(graphs)
    for original, back in zip(graphs, packed.to_data_list(), strict=True):
        assert back.num_nodes == original.num_nodes
        assert _edge_set(back) == _edge_set(original)
    index = [5, 0, 17, 3]
    chosen = packed.select(index)
    check_packed(chosen)
    for i, back in zip(index, chosen.to_data_list(), strict=True):
        assert _edge_set(back) == _edge_set(graphs[i])


def test_packing_makes_directed_input_undirected_without_self_loops():
    data = Data(edge_index=torch.tensor([[0, 1, 2, 2], [1, 2, 2, 0]]), num_nodes=4)
    packed = PackedGraphs.from_data_list([data])
    check_packed(packed)
    assert _edge_set(packed.to_data_list()[0]) == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)}


# -- augmentations ---------------------------------------------------------------------------


@pytest.mark.parametrize("augmentation", [drop_edges, drop_nodes, subgraph])
@pytest.mark.parametrize("strength", [0.2, 0.9])
def test_augmentations_keep_graphs_valid(packed, augmentation, strength):
    generator = torch.Generator().manual_seed(0)
    view = augmentation(packed, strength, generator)
    check_packed(view)  # no dangling edge, indices in range, reverse edges present
    assert view.num_graphs == packed.num_graphs
    assert bool((view.nodes_per_graph >= 1).all())
    assert bool((view.nodes_per_graph <= packed.nodes_per_graph).all())
    assert view.num_edges < packed.num_edges


def test_edge_drop_rate_and_node_drop_rate(packed):
    generator = torch.Generator().manual_seed(1)
    kept = [drop_edges(packed, 0.3, generator).num_edges / packed.num_edges for _ in range(20)]
    assert abs(np.mean(kept) - 0.7) < 0.03
    kept = [drop_nodes(packed, 0.3, generator).num_nodes / packed.num_nodes for _ in range(20)]
    assert abs(np.mean(kept) - 0.7) < 0.03


def test_subgraph_is_connected_and_of_the_asked_size(graphs, packed):
    view = subgraph(packed, 0.2, torch.Generator().manual_seed(2))
    for original, sub in zip(graphs, view.to_data_list(), strict=True):
        assert nx.is_connected(T.to_networkx(sub))  # grown by steps along edges
        wanted = math.ceil(0.8 * original.num_nodes)
        if nx.is_connected(T.to_networkx(original)):
            assert sub.num_nodes == wanted
        else:  # confined to the start node's component
            assert sub.num_nodes <= wanted


# -- no feature reaches pre-training ---------------------------------------------------------


def _with_features(graphs, seed):
    generator = torch.Generator().manual_seed(seed)
    out = []
    for g in graphs:
        g = g.clone()
        g.x = torch.randn(g.num_nodes, 7, generator=generator)
        g.edge_attr = torch.randn(g.edge_index.size(1), 3, generator=generator)
        out.append(g)
    return out


@pytest.mark.parametrize("objective", ["graphcl", "adgcl"])
def test_no_feature_leaks_into_pretraining(graphs, objective):
    inputs = []
    states = []
    for seed in (0, 1):
        torch.manual_seed(0)
        encoder = new_encoder(8, 2)
        hook = encoder.convs[0].register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
        pretrain(
            encoder,
            _with_features(graphs, seed),
            objective=objective,
            steps=3,
            batch_size=8,
            seed=0,
        )
        hook.remove()
        states.append(encoder.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert inputs and all(x.shape[1] == 1 and bool((x == 1).all()) for x in inputs)


def test_topology_only_strips_features(graphs):
    data = _with_features(graphs[:1], 0)[0]
    stripped = TopologyOnly()(data)
    assert torch.equal(stripped.x, torch.ones(data.num_nodes, 1))
    assert stripped.edge_attr is None and torch.equal(stripped.edge_index, data.edge_index)


# -- objectives ------------------------------------------------------------------------------


def test_nt_xent_matches_its_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 4), torch.randn(5, 4)
    sim = torch.nn.functional.cosine_similarity(z1[:, None], z2[None], dim=-1) / 0.2
    expected = np.mean(
        [-(sim[i, i] - torch.logsumexp(sim[i][torch.arange(5) != i], 0)).item() for i in range(5)]
    )
    assert nt_xent(z1, z2, 0.2).item() == pytest.approx(expected, rel=1e-5)
    assert nt_xent(z1, z1) < nt_xent(z1, z2)


def test_adgcl_view_weights_symmetric_and_both_players_learn(packed):
    torch.manual_seed(0)
    encoder = new_encoder(8, 2)
    objective = ADGCL()
    extra = objective.setup(encoder, torch.device("cpu"), 1e-2)
    weights = objective._weights(packed, torch.Generator().manual_seed(0))
    assert bool(((weights > 0) & (weights < 1)).all())
    assert torch.allclose(weights, weights[packed.reverse])
    before_view = [p.detach().clone() for p in objective.view.parameters()]
    before_enc = [p.detach().clone() for p in encoder.parameters()]
    optimizer = torch.optim.Adam([*encoder.parameters(), *extra], lr=1e-2)
    stats = objective.step(encoder, packed, optimizer, torch.Generator().manual_seed(1))
    assert 0 < stats["drop_ratio"] < 1
    assert any(
        not torch.equal(a, b) for a, b in zip(before_view, objective.view.parameters(), strict=True)
    )
    assert any(not torch.equal(a, b) for a, b in zip(before_enc, encoder.parameters(), strict=True))


def test_edge_weight_one_is_the_plain_encoder(packed):
    torch.manual_seed(0)
    encoder = new_encoder(8, 2).eval()
    plain = encode(encoder, packed)
    weighted = encode(encoder, packed, edge_weight=torch.ones(packed.num_edges))
    assert torch.allclose(plain, weighted, atol=1e-5)
    halved = encode(encoder, packed, edge_weight=torch.full((packed.num_edges,), 0.5))
    assert not torch.allclose(plain, halved)


# -- generators ------------------------------------------------------------------------------


def test_generators_sizes_and_shapes():
    for domain in ("social", "road", "citation", "trees", "er", "community"):
        graphs = gd.generate(domain, 12, 0)
        assert len(graphs) == 12
        for g in graphs:
            assert gd.MIN_NODES <= g.num_nodes <= gd.MAX_NODES, domain
            PackedGraphs.from_data_list([g])  # undirected, has edges, in range


def test_generator_properties():
    roads = gd.road_graphs(40, 0)
    assert max(int(torch.bincount(g.edge_index[0]).max()) for g in roads) <= gd.ROAD_DEGREE_CAP
    assert all(nx.is_connected(T.to_networkx(g)) for g in roads)
    trees = gd.tree_graphs(30, 0)
    assert all(nx.is_tree(T.to_networkx(g)) for g in trees)
    ers = gd.er_graphs(300, 0, p_range=(0.1, 0.2))
    gaps = [T.density(g) - float(g.p) for g in ers]
    assert abs(np.mean(gaps)) < 0.01  # E[density] = p
    assert np.corrcoef([T.density(g) for g in ers], [float(g.p) for g in ers])[0, 1] > 0.8
    communities = gd.community_graphs(5, 0)
    assert all(g.block.numel() == g.num_nodes and g.block.max() >= 1 for g in communities)


def test_same_seed_same_graphs():
    a, b = gd.generate("social", 5, 3), gd.generate("social", 5, 3)
    assert [_edge_set(x) for x in a] == [_edge_set(x) for x in b]
    c = gd.generate("social", 5, 4)
    assert [_edge_set(x) for x in a] != [_edge_set(x) for x in c]


def test_unknown_domain_is_one_clear_error():
    with pytest.raises(ProvenmlError, match="unknown graph domain 'socal'; did you mean social"):
        gd.generate("socal", 3, 0)


def test_molecule_task_split_is_disjoint_from_pretraining():
    task = set(gd.molecule_smiles("task"))
    pretraining = set(gd.molecule_smiles("pretrain"))
    assert not task & pretraining
    assert len(task) > 3000 and len(pretraining) > 7000


# -- targets against networkx ----------------------------------------------------------------


def _random_graphs():
    rng = np.random.default_rng(0)
    out = [nx.petersen_graph(), nx.complete_graph(6), nx.grid_2d_graph(3, 4), nx.path_graph(7)]
    out += [nx.gnp_random_graph(int(rng.integers(5, 12)), 0.4, seed=i) for i in range(8)]
    return [gd.graph_from_networkx(g) for g in out]


def test_cycle_counts_against_networkx():
    for data in _random_graphs():
        graph = T.to_networkx(data)
        counts = {3: 0, 4: 0, 5: 0}
        for cycle in nx.simple_cycles(graph, length_bound=5):
            if len(cycle) >= 3:
                counts[len(cycle)] += 1
        for length, expected in counts.items():
            assert T.cycle_count(data, length) == pytest.approx(expected), length


def test_distance_and_clustering_targets_against_networkx():
    for data in _random_graphs():
        graph = T.to_networkx(data)
        assert T.average_clustering(data) == pytest.approx(nx.average_clustering(graph))
        assert T.density(data) == pytest.approx(nx.density(graph))
        if nx.is_connected(graph):
            assert T.diameter_ratio(data) == pytest.approx(nx.diameter(graph) / len(graph))
            ecc = nx.eccentricity(graph)
            expected = torch.tensor([ecc[v] / len(graph) for v in range(len(graph))])
            assert torch.allclose(T.eccentricity_ratio(data), expected)


def test_cross_edge_probability():
    graph = nx.Graph([(0, 1), (2, 3), (1, 2)])
    data = gd.graph_from_networkx(graph, block=torch.tensor([0, 0, 1, 1]))
    assert T.cross_edge_probability(data) == pytest.approx(1 / 4)


# -- statistics against scipy ----------------------------------------------------------------


def test_paired_test_against_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 10), rng.normal(0.5, 1, 10)
    assert paired_p(a, b) == pytest.approx(sps.ttest_rel(a, b, alternative="less").pvalue)


def test_holm_against_its_definition():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    adjusted = holm(p)
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> running max
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    rng = np.random.default_rng(1)
    values = rng.uniform(size=7)
    brute = []
    order = np.argsort(values)
    for i in range(7):
        rank = int(np.where(order == i)[0][0])
        brute.append(max(min(1.0, (7 - j) * values[order[j]]) for j in range(rank + 1)))
    assert holm(values) == pytest.approx(brute)


def test_compare_tasks_interval_against_scipy():
    ours = {"t": [0.8, 0.7, 0.9, 0.75]}
    base = {"t": [1.0, 1.0, 1.1, 0.9]}
    (c,) = compare_tasks(ours, base, alpha=0.05)
    reduction = [(b - o) / b for o, b in zip(ours["t"], base["t"], strict=True)]
    low, high = sps.t.interval(0.95, 3, loc=np.mean(reduction), scale=sps.sem(reduction))
    assert (c.reduction_low, c.reduction_high) == pytest.approx((low, high))
    assert c.p_holm == pytest.approx(sps.ttest_rel(ours["t"], base["t"], alternative="less").pvalue)


# -- pre-training, fine-tuning, save / load ---------------------------------------------------


def _tiny_task(graphs, seed=0, features=False):
    data = []
    for g in graphs:
        g = g.clone()
        g.y = torch.tensor([T.density(g)])
        if features:
            g.feat = torch.randn(g.num_nodes, 3, generator=torch.Generator().manual_seed(seed))
        data.append(g)
    return DownstreamTask.from_graphs(
        data[:14], data[14:20], data[20:], features="feat" if features else None
    )


def test_same_seed_same_numbers(graphs):
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = new_encoder(8, 2)
        report = pretrain(encoder, graphs, steps=3, batch_size=8, seed=5)
        result = finetune(encoder, _tiny_task(graphs), epochs=3, batch_size=6, seed=5)
        results.append((report.losses, result.test_error, result.val_curve))
    assert results[0] == results[1]


def test_model_selection_uses_validation_only(graphs):
    task = _tiny_task(graphs)
    shuffled = dataclasses.replace(
        task, test=dataclasses.replace(task.test, y=task.test.y.flip(0) * 10)
    )
    torch.manual_seed(0)
    encoder = new_encoder(8, 2)
    a = finetune(encoder, task, epochs=6, batch_size=6, seed=1)
    b = finetune(encoder, shuffled, epochs=6, batch_size=6, seed=1)
    assert a.best_epoch == b.best_epoch and a.val_curve == b.val_curve
    assert a.val_error == min(a.val_curve) and a.test_error != b.test_error


def test_feature_input_layer_starts_from_the_pretrained_function(graphs):
    torch.manual_seed(0)
    encoder = new_encoder(8, 2).eval()
    widened = with_feature_input(encoder, 3).eval()
    task = _tiny_task(graphs, features=True)
    batch = task.train
    x = torch.cat([torch.ones(batch.num_nodes, 1), batch.x], 1)
    assert torch.allclose(encode(widened, batch, x=x), encode(encoder, batch), atol=1e-5)
    result = finetune(encoder, task, epochs=2, batch_size=6, features=True)
    assert math.isfinite(result.test_error)


def test_save_and_load(tmp_path, graphs):
    torch.manual_seed(0)
    encoder = new_encoder(8, 2)
    pretrain(encoder, graphs, objective="graphcl", steps=2, batch_size=8)
    loaded = load_encoder(save_encoder(encoder, tmp_path / "enc.pt"))
    packed = PackedGraphs.from_data_list(graphs)
    assert torch.equal(encode(encoder.eval(), packed), encode(loaded.eval(), packed))


def test_linear_probe_and_builtin_task(graphs):
    task = load_task(
        "trees_diameter", seed=0, train_labels=20, val_size=10, test_size=20, pool_size=20
    )
    assert task.train.num_graphs == 20 and task.test.num_graphs == 20
    assert abs(float(task.train.y.mean())) < 1e-5  # z-scored with the training labels
    torch.manual_seed(0)
    probe = linear_probe(new_encoder(8, 2), task)
    assert math.isfinite(probe.test_error) and probe.alpha > 0
    node = load_task("trees_eccentricity", train_labels=5, val_size=3, test_size=4, pool_size=5)
    assert node.level == "node" and node.train.y.numel() == node.train.num_nodes


# -- bad input -------------------------------------------------------------------------------


def test_graph_without_edges_is_one_clear_error(graphs):
    empty = Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=4)
    with pytest.raises(ProvenmlError, match=r"graphs\[2\] has no edges"):
        pretrain(new_encoder(8, 2), [graphs[0], graphs[1], empty], steps=1)


def test_data_without_edge_index_is_one_clear_error(graphs):
    with pytest.raises(ProvenmlError, match=r"graphs\[1\] has no edge_index"):
        pretrain(new_encoder(8, 2), [graphs[0], Data(x=torch.ones(3, 1))], steps=1)


def test_unknown_task_is_one_clear_error():
    with pytest.raises(ProvenmlError, match="unknown task 'trees_diametre'; did you mean"):
        finetune(new_encoder(8, 2), "trees_diametre")


def test_other_bad_inputs(graphs):
    with pytest.raises(ProvenmlError, match="unknown pre-training objective"):
        pretrain(new_encoder(8, 2), graphs, objective="simclr")
    with pytest.raises(ProvenmlError, match="in_dim=1"):
        pretrain(new_encoder(8, 2, in_dim=3), graphs)
    with pytest.raises(ProvenmlError, match="no node features"):
        finetune(new_encoder(8, 2), _tiny_task(graphs), features=True)
    with pytest.raises(ProvenmlError, match="augmentations must be among"):
        GraphCL(augmentations=("rotate",))


# -- the experiments, end to end (the shared smoke runs of provenml.core.testing) ------------


def test_transfer_smoke_records_its_regime_checks():
    run = smoke_run("graphpretrain.transfer")
    (claim,) = run.result["claims"]
    assert claim["threshold"]["value"] == 0.75 and claim["precondition"] is not None
    titles = " ".join(t["title"] for t in run.result["tables"])
    assert "linear probe" in titles and "labels sweep" in titles
    assert (run.seed_dir / "error_reduction.png").exists()
    assert (run.seed_dir / "label_sweep.png").exists()
    seed = run.seed_result()
    records = seed["data"]["records"]
    assert [r["seed"] for r in records] == [0, 1]  # 1000 * harness seed + replicate
    for r in records:  # both arms measured on every task, probes on the structural ones
        assert set(r["errors"]) == set(r["probe"])
        assert all(set(e) == {"pretrained", "scratch"} for e in r["errors"].values())


def test_features_and_domains_smoke_runs_compare_their_arms():
    features = smoke_run("graphpretrain.features").seed_result()
    for r in features["data"]["records"]:
        assert set(r["errors"]) == {"molecules_logp", "molecules_lipinski"}
    domains = smoke_run("graphpretrain.domains")
    assert {c["key"] for c in domains.result["claims"]} == {"out_of_domain_beats_in_domain"}
    records = domains.seed_result()["data"]["records"]
    assert {(r["seed"], r["domain"]) for r in records} == {
        (s, d) for s in (0, 1) for d in ("road", "citation")
    }


def test_unknown_task_in_config_fails_before_running(tmp_path):
    with pytest.raises(ProvenmlError, match="unknown task"):
        run_experiment(
            get_experiment("graphpretrain.transfer"),
            scale="smoke",
            overrides={"tasks": "road_diameter,nope"},
            out_root=tmp_path,
        )
