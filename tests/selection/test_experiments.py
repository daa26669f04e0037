"""The reproductions' machinery: the update count, FLOPs against independent counts, the noisy
fraction against a replay, the FLOP ratio, the plateau check and the tasks' data.

The smoke runs themselves are checked by ``tests/test_contract.py``; the tests here that look at
a run use the same session-wide smoke run (:func:`provenml.core.testing.smoke_run`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from provenml.core import Result, count_flops
from provenml.core.testing import smoke_run
from provenml.nn import mlp
from provenml.selection import (
    OnlineBatchSelector,
    Uniform,
    byte_windows,
    classification_loss,
    corrupt_sequences,
    sequence_loss,
    small_cnn,
    symmetric_label_noise,
)
from provenml.selection.experiments import (
    NoisyLabelsConfig,
    generality_row,
    plateau_gain,
    plateau_table,
)
from provenml.selection.images import shifted
from provenml.selection.runner import ArmRun, build_reference, run_arm
from provenml.selection.tasks import SelectionTask

CPU = torch.device("cpu")


def toy_task(n: int = 512, noisy: torch.Tensor | None = None) -> SelectionTask:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    return SelectionTask(
        name="toy",
        pool=TensorDataset(x, y),
        is_noisy=torch.zeros(n, dtype=torch.bool) if noisy is None else noisy,
        holdout=TensorDataset(x[:128], y[:128]),
        eval_batch=(x[:64], y[:64]),
        loss_fn=classification_loss,
        metric="test accuracy",
        higher_is_better=True,
        learner=lambda: mlp(6, [32], 4),
        scorer=lambda width: mlp(6, [width], 4),
    )


def arm(name: str, task: SelectionTask, steps: int, eval_every: int, **kw: object) -> ArmRun:
    torch.manual_seed(0)
    learner = task.learner()
    reference = kw.pop("reference", None)
    return run_arm(
        name,
        task,
        learner,
        reference,  # type: ignore[arg-type]
        steps=steps,
        batch_size=16,
        rho=0.5,
        lr=1e-3,
        scorer_lr=1e-3,
        scorer_width=8,
        temperature=1.0,
        eval_every=eval_every,
        seed=3,
        device=CPU,
    )


# -- issue 27: the counting bug --------------------------------------------------------------


def test_five_steps_are_five_updates_labelled_one_to_five() -> None:
    run = arm("uniform", toy_task(), steps=5, eval_every=1)
    assert run.steps == [1, 2, 3, 4, 5]
    assert run.updates == 5
    assert run.compute["calls"]["training:learner"] == 5
    # the FLOPs recorded at evaluation k are k learner steps
    per_step = run.compute["flops"]["training:learner"] // 5
    assert run.flops == [k * per_step for k in range(1, 6)]


def test_evaluations_every_second_update_and_after_the_last() -> None:
    run = arm("uniform", toy_task(), steps=5, eval_every=2)
    assert run.steps == [2, 4, 5]
    assert run.compute["calls"]["training:learner"] == 5


def test_noisy_fraction_divides_by_the_updates_made() -> None:
    # every example noisy: the fraction is exactly 1 (the double count gave 4/5)
    run = arm("uniform", toy_task(noisy=torch.ones(512, dtype=torch.bool)), 5, 1)
    assert run.noisy_fraction == 1.0


def test_noisy_fraction_matches_a_replay_of_the_uniform_draws() -> None:
    noisy = torch.zeros(512, dtype=torch.bool)
    noisy[::3] = True
    task = toy_task(noisy=noisy)
    run = arm("uniform", task, steps=40, eval_every=10)
    # an independent replay: the same selector seed, uniform choices, counted by hand
    replay = OnlineBatchSelector(torch.nn.Identity(), classification_loss, Uniform(), 16, seed=3)
    picked = [s.indices for s in replay.selections(task.pool, None, max_steps=40)]
    expected = sum(int(noisy[i].sum()) for i in picked) / (40 * 16)
    assert run.noisy_fraction == pytest.approx(expected, abs=1e-12)


# -- FLOPs against independent counts -------------------------------------------------------


def test_learner_flops_are_steps_times_one_counted_step() -> None:
    task = toy_task()
    run = arm("uniform", task, steps=7, eval_every=7)
    torch.manual_seed(0)
    learner = task.learner()
    batch = (task.pool.tensors[0][:16], task.pool.tensors[1][:16])
    _, step = count_flops(lambda: classification_loss(learner, batch).mean().backward())
    assert run.compute["flops"] == {"training:learner": 7 * step}


def test_reference_costs_are_counted_and_charged_to_the_arm() -> None:
    task = toy_task()
    reference = build_reference(task, 8, steps=6, batch_size=32, lr=1e-3, seed=0, device=CPU)
    run = arm("learnability", task, steps=4, eval_every=4, reference=reference)
    scorer = task.scorer(8)
    x, y = task.pool.tensors
    batch = (x[:32], y[:32])
    _, ref_step = count_flops(lambda: classification_loss(scorer, batch).mean().backward())
    with torch.no_grad():
        _, table = count_flops(lambda: classification_loss(scorer, (x, y)))
        _, score = count_flops(lambda: classification_loss(scorer, batch))
    flops = run.compute["flops"]
    assert flops["training:reference"] == 6 * ref_step
    assert flops["scoring:reference"] == table  # the loss table over the whole pool, once
    assert flops["scoring:actor"] == 4 * score  # one forward of the 32-example super-batch
    assert "scoring:learner" not in flops


def test_the_headline_scorers_cost_one_fiftieth_of_the_learner() -> None:
    cfg = NoisyLabelsConfig.from_preset("small")
    x = torch.randn(8, 40)
    _, learner = count_flops(lambda: mlp(40, list(cfg.learner_hidden), 10)(x))
    _, scorer = count_flops(lambda: mlp(40, [cfg.scorer_width], 10)(x))
    # by hand: 2 * (40*115 + 115*10) against 2 * (40*512 + 512*512 + 512*10) per example
    assert scorer / 8 == 2 * (40 * 115 + 115 * 10)
    assert learner / 8 == 2 * (40 * 512 + 512 * 512 + 512 * 10)
    assert 1 / 55 < scorer / learner < 1 / 45
    run = smoke_run("selection.noisy_labels")  # same architectures at smoke
    assert run.result["summary"]["scorer_to_learner_flop_ratio"] == pytest.approx(scorer / learner)


def test_smoke_run_records_the_parts_and_the_checks() -> None:
    run = smoke_run("selection.noisy_labels")
    summary = run.result["summary"]
    assert summary["updates/uniform"] == 40  # the smoke preset's steps, exactly
    titles = [t["title"] for t in run.result["tables"]]
    assert titles[0].startswith("runs against uniform's final test accuracy")
    assert titles[1:] == ["generality", titles[2]] and titles[2].startswith("plateau check")
    arms = {row[0]: row for row in run.result["tables"][0]["rows"]}
    assert arms["uniform"][8] == "1/1"  # uniform reaches its own final accuracy
    seed = run.seed_result()
    runs = seed["data"]["runs"]
    assert set(runs) == {"uniform", "learnability", "rho_loss", "hard_learner", "easy_reference"}
    # each part's ledger holds its arm's own ledger under the arm's label
    for part_dir in sorted(run.seed_dir.glob("part-*")):
        part = json.loads((part_dir / "result.json").read_text())
        (label,) = part["data"]["runs"]
        for category, flops in runs[label]["compute"]["flops"].items():
            assert part["compute"]["flops"][f"{label}/{category}"] == flops
    # RHO-LOSS and hard-learner score with the learner: its forward on the 128-example
    # super-batch, every step, counted independently here
    _, fwd = count_flops(lambda: mlp(40, [512, 512], 10)(torch.randn(128, 40)))
    assert runs["rho_loss"]["compute"]["flops"]["scoring:learner"] == 40 * fwd


# -- measurements -----------------------------------------------------------------------------


def test_first_reach_uses_the_smoothed_curve() -> None:
    run = ArmRun("x", steps=[10, 20, 30, 40], metric=[0.5, 0.9, 0.5, 0.9], flops=[1, 2, 3, 4])
    # trailing means over 2 evaluations: 0.5, 0.7, 0.7, 0.7
    assert run.first_reach(0.7, 2) == (20.0, 2.0, True)
    assert run.first_reach(0.8, 2) == (40.0, 4.0, False)


def test_first_reach_of_a_loss_goes_down() -> None:
    run = ArmRun("x", [10, 20, 30], [3.0, 2.0, 1.0], [5, 6, 7], higher_is_better=False)
    # trailing means over 2: 3.0, 2.5, 1.5
    assert run.first_reach(2.5, 2) == (20.0, 6.0, True)
    assert run.first_reach(1.0, 2) == (30.0, 7.0, False)


def test_plateau_gain_by_hand() -> None:
    steps = [100, 200, 300, 400, 500, 600, 700, 800]
    acc = ArmRun("u", steps, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7], [0] * 8)
    # window 1: the last quarter starts at update 600 (0.6): gain 0.7 - 0.6
    assert plateau_gain(acc, 1) == pytest.approx(0.1)
    loss = ArmRun("u", steps, [8, 7, 6, 5, 4, 3, 2.5, 2.0], [0] * 8, higher_is_better=False)
    assert plateau_gain(loss, 1) == pytest.approx(1.0)  # a drop of 1.0 is a gain of 1.0


def test_plateau_table_compares_the_gain_with_the_seed_spread() -> None:
    def result(gain: float, final: float) -> Result:
        return Result(
            summary={"plateau/uniform_last_quarter_gain": gain, "final_metric/uniform": final}
        )

    flat = plateau_table([result(0.001, 0.70), result(0.003, 0.72), result(0.002, 0.74)])
    assert flat.rows == [[0.002, 0.02, "yes"]]  # std of 0.70, 0.72, 0.74 (ddof 1) is 0.02
    rising = plateau_table([result(0.05, 0.70), result(0.03, 0.72), result(0.04, 0.74)])
    assert rising.rows[0][2] == "no"
    assert plateau_table([result(0.0, 0.7)]).rows[0][2] == "n/a (one seed)"


def test_generality_row_means_and_t_half_widths() -> None:
    results = [
        Result(
            summary={
                "update_saving/learnability": u,
                "compute_saving/learnability": u - 0.1,
                "noisy_fraction/learnability": 0.1,
                "noisy_fraction/uniform": 0.3,
            }
        )
        for u in (0.2, 0.4)
    ]
    row = generality_row(results, "t", "m")
    # mean 0.3, half-width t(0.975, 1) * std / sqrt(2) = 12.706 * 0.1414 / 1.414 = 1.271
    assert row[:3] == ["t", "m", "+0.300 ± 1.271"]
    assert row[4:] == ["0.100 ± 0.000", "0.300 ± 0.000", 2]


# -- the tasks' data --------------------------------------------------------------------------


def test_symmetric_label_noise_flips_exactly_the_fraction() -> None:
    labels = torch.arange(1000) % 10
    noisy, is_noisy = symmetric_label_noise(labels, 0.3, 10, torch.Generator().manual_seed(0))
    assert int(is_noisy.sum()) == 300
    assert torch.equal(noisy != labels, is_noisy)  # a flipped label never stays the same


def test_corrupt_sequences_shuffle_keeps_each_windows_bytes() -> None:
    windows = torch.arange(40 * 16, dtype=torch.int64).remainder(251).to(torch.uint8).view(40, 16)
    out, is_noisy = corrupt_sequences(windows, 0.25, "shuffle", torch.Generator().manual_seed(1))
    assert int(is_noisy.sum()) == 10
    assert torch.equal(out[~is_noisy], windows[~is_noisy])
    for row in is_noisy.nonzero().flatten():  # the same bytes, in another order
        assert torch.equal(out[row].sort().values, windows[row].sort().values)
        assert not torch.equal(out[row], windows[row])
    rand, mask = corrupt_sequences(windows, 0.5, "random", torch.Generator().manual_seed(1))
    assert int(mask.sum()) == 20 and torch.equal(rand[~mask], windows[~mask])


def test_byte_windows_cut_the_stream_without_overlap() -> None:
    stream = torch.arange(103, dtype=torch.int64).to(torch.uint8)
    assert torch.equal(byte_windows(stream, 10, None, torch.Generator())[3], stream[30:40])
    some = byte_windows(stream, 10, 4, torch.Generator().manual_seed(0))
    assert some.shape == (4, 10) and all(int(w[0]) % 10 == 0 for w in some)


def test_sequence_loss_is_the_mean_cross_entropy_per_window() -> None:
    class Bigram(torch.nn.Module):  # predicts byte t+1 from byte t; offset 0
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Embedding(256, 256)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.table(x)

    torch.manual_seed(0)
    model = Bigram()
    windows = torch.randint(0, 256, (3, 9), dtype=torch.uint8)
    losses = sequence_loss(model, (windows,))
    for i in range(3):
        x, y = windows[i, :-1].long(), windows[i, 1:].long()
        manual = np.mean([F.cross_entropy(model.table.weight[x[t]], y[t]).item() for t in range(8)])
        assert losses[i].item() == pytest.approx(manual, rel=1e-5)


def test_shifted_moves_each_image_by_at_most_shift_pixels() -> None:
    image = torch.zeros(1, 1, 6, 6)
    image[0, 0, 2, 3] = 1.0
    moved = shifted(image.repeat(200, 1, 1, 1), 1, torch.Generator().manual_seed(0))
    positions = {tuple(int(v) for v in m[0].nonzero()[0]) for m in moved}
    assert positions == {(r, c) for r in (1, 2, 3) for c in (2, 3, 4)}  # all 9 shifts occur


def test_small_cnn_shapes() -> None:
    net = small_cnn((4, 8), size=16)
    assert net(torch.zeros(5, 1, 16, 16)).shape == (5, 10)


def test_tasks_follow_the_device() -> None:
    """The runner moves every tensor to ``ctx.device``: checked on the ``meta`` device (no
    data), for the task's tensors, the models it builds and one scoring forward."""
    task = toy_task().to(torch.device("meta"))
    tensors = [*task.pool.tensors, task.is_noisy, *task.holdout.tensors, *task.eval_batch]
    assert {t.device.type for t in tensors} == {"meta"}
    scorer = task.scorer(8).to(torch.device("meta"))
    losses = task.loss_fn(scorer, task.pool.tensors)
    assert losses.device.type == "meta" and losses.shape == (512,)


def test_flops_are_counted_on_the_models_device_when_the_task_is_elsewhere() -> None:
    """`--device cuda` (stop 48, on an H200): the experiments count the FLOPs of the learner's
    CPU initialisation against a task already on the GPU, which crashed every selection
    experiment. The batch now follows the model; the meta device stands in for the GPU here."""
    task = toy_task()
    expected = task.flops_per_example(task.learner())
    assert expected == 2 * (6 * 32 + 32 * 4)
    assert task.flops_per_example(task.learner().to("meta")) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_flops_of_a_cpu_model_against_a_task_on_the_gpu() -> None:
    task = toy_task()
    on_gpu = task.to(torch.device("cuda"))
    assert on_gpu.flops_per_example(task.learner()) == task.flops_per_example(task.learner())
