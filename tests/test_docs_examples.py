"""Every Python example in README.md, docs/*.md and the packages' docstrings runs.

A user copies these examples first, so they must stay true to the API. Each ```python block
(``docs/*_history.md`` aside: those record past stops), each ``::`` literal block of a
package's docstring (``help(provenml.kge)``) and each ``::`` block of a module's docstring that
imports from provenml (the others there are fragments or shell commands) runs in a fresh
namespace in a temporary working folder. Where an example names the user's own data (``my_graphs``,
``x_train``, a folder of photos), :data:`EXAMPLES` gives a prelude that makes a small stand-in,
and replacements that shrink its step counts and sizes so that the whole file runs in about a
minute; the example's own code, calls and attribute reads run as written. An example that
continues an earlier one (``after``) runs in that one's namespace. A block that is not a
runnable example (a template fragment) says so with ``skip`` and a reason. A new block with no
entry runs as written: if it needs data, give it an entry here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import provenml

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
LITERAL = re.compile(r"::\n\n((?:(?:[ \t]+.*)?\n)+)")  # a docstring's indented ``::`` block


@dataclass(frozen=True)
class Example:
    """How to run one block: a prelude run first, ``(old, new)`` text replacements (each must
    occur in the block), the example whose namespace it continues, or a reason to skip it."""

    prelude: str = ""
    replace: tuple[tuple[str, str], ...] = ()
    after: str | None = None
    skip: str = ""
    slow: bool = False


_RAISES = '''
def raises(fn, *args, match=""):
    """The example shows a call that raises: check it does, with the message it shows."""
    from provenml.errors import ProvenmlError
    try:
        fn(*args)
    except ProvenmlError as error:
        assert match in str(error), str(error)
    else:
        raise AssertionError("expected a ProvenmlError")
'''

_MY_NET = """
import torch

class MyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.norm(self.conv(x)).relu().mean((2, 3)))
"""

_SIGNALS = """
import torch
generator = torch.Generator().manual_seed(0)
my_labels = torch.arange(80).repeat_interleave(25)          # 80 classes, 25 examples each
prototypes = torch.randn(80, 40, generator=generator)
my_signals = prototypes[my_labels] + 0.5 * torch.randn(len(my_labels), 40, generator=generator)
"""

_FEWSHOT_BATCH = """
train_classes = torch.arange(64)
device = "cpu"
"""

_WEB = """
position = torch.arange(len(y)) % 25                 # an example's place within its class
clean_x, clean_y = x[position < 15], y[position < 15]
web_x, web_y = x[position >= 15], y[position >= 15]
n_clean = len(clean_x)
"""

_GRAPHS = """
import torch
from torch_geometric.data import Data
from torch_geometric.utils import erdos_renyi_graph

def random_graph(seed):
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(6, 12, (1,), generator=generator))
    torch.manual_seed(seed)
    edge_index = erdos_renyi_graph(n, 0.3)
    return Data(edge_index=edge_index, num_nodes=n, x=torch.randn(n, 3),
                y=torch.tensor([edge_index.size(1) / n]))

my_graphs = [random_graph(s) for s in range(40)]
train_graphs = [random_graph(100 + s) for s in range(24)]
val_graphs = [random_graph(200 + s) for s in range(8)]
test_graphs = [random_graph(300 + s) for s in range(8)]
"""

_KG_FILES = """
import random
from pathlib import Path
random.seed(0)
Path("my_kg").mkdir()
def entity():
    return f"e{random.randrange(30)}"
triples = sorted({(entity(), f"r{random.randrange(4)}", entity()) for _ in range(400)})
random.shuffle(triples)
for name, rows in (("train", triples[:300]), ("valid", triples[300:330]), ("test", triples[330:])):
    Path(f"my_kg/{name}.tsv").write_text("".join("\\t".join(t) + "\\n" for t in rows))
"""

_SELECTION = """
import torch
generator = torch.Generator().manual_seed(0)
def labelled(n):
    x = torch.randn(n, 40, generator=generator)
    return x, x[:, :10].argmax(1)
x_train, y_train = labelled(512)
x_clean, y_clean = labelled(128)
"""

_PHOTOS = """
import numpy as np
from pathlib import Path
from PIL import Image
Path("my_photos").mkdir()
rng = np.random.default_rng(0)
for i in range(64):
    Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(f"my_photos/{i}.png")
"""

_TEMPLATE = "a fragment of the template for a new system; names stand for the contributor's own"

_OPTIMIZER = """
import torch
optimizer = torch.optim.AdamW(torch.nn.Linear(4, 2).parameters(), lr=1e-3)
"""

_SELECTION_PACKAGE = (
    _SELECTION
    + """
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from provenml.nn import mlp as _mlp
def loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y, reduction="none")
clean_holdout = TensorDataset(x_clean, y_clean)
train_dataset = TensorDataset(x_train, y_train)
learner = _mlp(40, [64], 10)
"""
)

_PYG_BATCH = """
import torch
from torch_geometric.data import Batch, Data
data = Batch.from_data_list(
    [Data(x=torch.ones(n, 1), edge_index=torch.tensor([[0, 1], [1, 0]])) for n in (3, 4)]
)
"""

_ROLLOUT = """
import torch
generator = torch.Generator().manual_seed(0)
rewards = torch.randn(8, 16, generator=generator)           # (num_envs, horizon)
values = torch.randn(8, 16, generator=generator)
obs = torch.randn(8, 16, 6, generator=generator)
actions = torch.randint(0, 5, (8, 16), generator=generator)
old_logp = torch.full((8, 16), -1.6)
"""

_MODEL_AND_ONNX = """
import torch
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
x = torch.randn(2, 16)
torch.onnx.export(model, (x,), "model.onnx", dynamo=False, input_names=["x"])
"""

#: Entries by ``file#index`` (the index counts the file's ```python blocks from 0).
EXAMPLES: dict[str, Example] = {
    "docs/compiler.md#0": Example(
        prelude=_MY_NET,
        replace=(
            ("TransformerEncoderLayer(256, 4, 1024,", "TransformerEncoderLayer(32, 4, 64,"),
            ("torch.randn(1, 64, 256)", "torch.randn(1, 8, 32)"),
            ("MultiheadAttention(256, 4,", "MultiheadAttention(32, 4,"),
        ),
    ),
    "docs/compiler.md#2": Example(after="docs/compiler.md#1"),  # (stop 73: nested inputs)
    "docs/compiler.md#3": Example(after="docs/compiler.md#0"),
    # the library's own models (stop 71): two batches of 3 graphs, an episode, ids to rank
    "docs/compiler.md#4": Example(
        prelude="""
import torch
_g = torch.Generator().manual_seed(0)
def _graphs(n):
    batch = torch.arange(n).repeat_interleave(36 // n)
    return torch.randn(36, 4, generator=_g), torch.randint(0, 36, (2, 60), generator=_g), batch
x, edge_index, batch = _graphs(3)
x2, edge_index2, batch2 = _graphs(3)
support, labels, query = torch.randn(2, 5, 64), torch.arange(5).repeat(2, 1), torch.randn(2, 10, 64)
num_entities, num_relations = 100, 5
h, r = torch.randint(0, 100, (8,)), torch.randint(0, 5, (8,))
"""
    ),
    "docs/compiler.md#5": Example(after="docs/compiler.md#3"),
    "docs/contributing.md#1": Example(
        prelude="from provenml.kge import KGEModel\nnum_entities, num_relations, dim = 10, 3, 8\n"
        + _RAISES,
        replace=(
            ("class TransE(KGEModel): ...", "class TransE(KGEModel):\n    pass"),
            ('MODELS.get("transee")', 'raises(MODELS.get, "transee", match="did you mean transe")'),
        ),
    ),
    **{f"docs/contributing.md#{i}": Example(skip=_TEMPLATE) for i in range(2, 9)},
    # Ray's start-up (15 s) and its worker processes: with the other Ray tests, in the slow set
    "docs/distrl.md#0": Example(replace=(("iterations=100", "iterations=3"),), slow=True),
    "docs/federated.md#0": Example(replace=(("rounds=40", "rounds=2"),)),
    "docs/federated.md#1": Example(
        skip="needs LLaVA's 7B weights on disk and a GPU (tests/federated/test_llava.py runs "
        "the teacher on a tiny LLaVA; test_teacher_loading.py the missing-weights error)"
    ),
    "docs/fewshot.md#0": Example(
        prelude=_SIGNALS,
        replace=(
            ("pretrain_steps=600, meta_steps=300", "pretrain_steps=5, meta_steps=3"),
            ("episodes=600", "episodes=10"),
        ),
    ),
    "docs/fewshot.md#1": Example(after="docs/fewshot.md#0", prelude=_FEWSHOT_BATCH),
    "docs/fewshot.md#2": Example(after="docs/fewshot.md#1", prelude=_WEB),
    "docs/graphpretrain.md#0": Example(
        prelude=_GRAPHS,
        replace=(
            ("steps=2000, batch_size=128", "steps=3, batch_size=16"),
            ("epochs=100, patience=20", "epochs=2, patience=20"),
            ("features=True)", "features=True, epochs=2)"),
        ),
    ),
    "docs/kge.md#0": Example(prelude=_KG_FILES, replace=(("epochs=200,", "epochs=4,"),)),
    "docs/kge.md#1": Example(
        replace=(
            (
                "num_entities=100_000, num_triples=1_000_000",
                "num_entities=2_000, num_triples=20_000",
            ),
            ("epochs=5,", "epochs=1,"),
        )
    ),
    "docs/metarl.md#0": Example(
        replace=(
            (
                "GridworldConfig().train_config()",
                "GridworldConfig(total_steps=2 * 32 * 60, num_envs=32, model_updates=2,"
                " model_pretrain_updates=2).train_config()",
            ),
            ('evaluation_options("gridworld", 500,', 'evaluation_options("gridworld", 20,'),
        ),
    ),
    "docs/selection.md#0": Example(
        prelude=_SELECTION, replace=(("steps=2000", "steps=20"), ("epochs=5", "epochs=1"))
    ),
    "docs/ssl.md#0": Example(
        prelude=_PHOTOS,
        replace=(("queue_size=1024", "queue_size=128"), ("steps=5000", "steps=2")),
    ),
    "provenml.schedules#0": Example(prelude=_OPTIMIZER),
    "provenml.selection#0": Example(
        prelude=_SELECTION_PACKAGE,
        replace=(("loss_fn, steps=2000", "loss_fn, steps=20"), ("max_steps=2000", "max_steps=3")),
    ),
    "provenml.graphpretrain#0": Example(
        prelude=_GRAPHS, replace=(("steps=500", "steps=3"), ("epochs=100", "epochs=2"))
    ),
    "provenml.ssl#0": Example(
        prelude=_PHOTOS, replace=(("queue_size=4096", "queue_size=128"), ("steps=2000", "steps=2"))
    ),
    "provenml.nn#0": Example(prelude=_PYG_BATCH),
    "provenml.rl#0": Example(prelude=_ROLLOUT),
    "provenml.compiler#0": Example(prelude=_MODEL_AND_ONNX + "import pickle\n"),
    # Ray's start-up and its worker processes: with the other Ray tests, in the slow set
    "provenml.distrl#0": Example(slow=True),
    "provenml.core.executor#0": Example(
        skip="needs a running Ray cluster (address='auto'); tests/core/test_executor.py runs "
        "RayExecutor on a local Ray instance"
    ),
    "provenml.data.graph_domains#0": Example(
        replace=(("num_graphs=500", "num_graphs=20"), ("num_graphs=100", "num_graphs=10"))
    ),
    "provenml.fewshot.denoise#0": Example(
        prelude="""
import torch
generator = torch.Generator().manual_seed(0)
clean_labels = torch.arange(4).repeat_interleave(10)
clean_features = torch.randn(40, 8, generator=generator) + clean_labels[:, None]
web_labels = torch.arange(4).repeat_interleave(6)
web_is_relevant = torch.arange(24) % 3 != 0
web_features = torch.randn(24, 8, generator=generator) + torch.where(
    web_is_relevant, web_labels, (web_labels + 2) % 4
)[:, None]
"""
    ),
    "provenml.kge.training#0": Example(replace=(("epochs=50", "epochs=2"),)),
    "provenml.selection.text#0": Example(replace=(("20000, generator", "64, generator"),)),
    "provenml.metarl#0": Example(replace=(("total_steps=50_000", "total_steps=2 * 32 * 60"),)),
    "provenml.federated#0": Example(replace=(("rounds=15", "rounds=2"),)),
    "provenml.kge#0": Example(replace=(("epochs=50,", "epochs=4,"),)),
    "provenml.kge#1": Example(
        replace=(
            (
                "num_entities=100_000, num_triples=1_000_000",
                "num_entities=2_000, num_triples=20_000",
            ),
        )
    ),
}


def blocks() -> Iterator[tuple[str, str]]:
    """(key, code) of every ```python block in README.md and docs/*.md (key ``file#index``),
    every ``::`` block of a package's docstring and every ``::`` block of a module's docstring
    that imports from provenml (key ``module#index``)."""
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if not p.stem.endswith("_history"))
    for path in [ROOT / "README.md", *docs]:
        for index, match in enumerate(BLOCK.finditer(path.read_text())):
            yield f"{path.relative_to(ROOT).as_posix()}#{index}", match.group(1)
    for module in pkgutil.walk_packages(provenml.__path__, "provenml."):
        doc = importlib.import_module(module.name).__doc__ or ""
        for index, match in enumerate(LITERAL.finditer(doc + "\n")):
            code = textwrap.dedent(match.group(1))
            if module.ispkg or "from provenml" in code:
                yield f"{module.name}#{index}", code


ALL = dict(blocks())


def _source(key: str) -> str:
    """The block's code with its entry's replacements applied (each must occur)."""
    example = EXAMPLES.get(key, Example())
    code = ALL[key]
    for old, new in example.replace:
        assert old in code, f"{key}: the replacement's text {old!r} is no longer in the example"
        code = code.replace(old, new)
    return example.prelude + "\n" + code


def _run(key: str, namespaces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run ``key`` (after the example it continues, unless that ran already in ``namespaces``)
    and return its namespace."""
    if key in namespaces:
        return namespaces[key]
    example = EXAMPLES.get(key, Example())
    namespace = dict(_run(example.after, namespaces)) if example.after else {"__name__": key}
    exec(compile(_source(key), key, "exec"), namespace)  # the docs' own examples
    namespaces[key] = namespace
    return namespace


def _params() -> list[Any]:
    params = []
    for key in ALL:
        example = EXAMPLES.get(key, Example())
        marks = [pytest.mark.slow] if example.slow else []
        if example.skip:
            marks.append(pytest.mark.skip(reason=example.skip))
        params.append(pytest.param(key, id=key, marks=marks))
    return params


def test_every_entry_names_an_example_that_exists() -> None:
    """An entry left behind when its block moved would silently test nothing."""
    assert set(EXAMPLES) <= set(ALL), sorted(set(EXAMPLES) - set(ALL))


# namespaces of the examples run so far in this process, for the ones that continue them
_NAMESPACES: dict[str, dict[str, Any]] = {}


@pytest.mark.parametrize("key", _params())
def test_docs_example_runs(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples write files (checkpoints, ONNX, a graph on disk)
    _run(key, _NAMESPACES)
