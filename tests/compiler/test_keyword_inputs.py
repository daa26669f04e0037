"""Stop 72: ``compile(model, example_kwargs=...)`` for models called with inputs by keyword
(a Hugging Face model's ``model(**tokenizer(text))``); before, a user had to write a wrapper
taking them by position. The compiled model takes the same keywords."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.lin = nn.Linear(16, 3)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.emb(input_ids)
        if attention_mask is not None:
            h = h * attention_mask[..., None]
        return self.lin(h).sum(1)


@pytest.fixture
def data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7)
    mask[1, 4:] = 0
    return Tagger().eval(), ids, mask


def test_inputs_by_keyword(data: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, ids, mask = data
    fast = pc.compile(
        model, example_kwargs={"input_ids": ids, "attention_mask": mask}, tuning=False, threads=1
    )
    assert fast.graph.graph.inputs == ["input_ids", "attention_mask"]
    other = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(fast(input_ids=ids, attention_mask=mask), model(ids, mask))
        torch.testing.assert_close(fast(attention_mask=mask, input_ids=other), model(other, mask))
        torch.testing.assert_close(fast(other, 1 - mask), model(other, 1 - mask))  # by position
        again = pickle.loads(pickle.dumps(fast))
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask), model(ids, mask))


def test_positional_then_keyword(data: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, ids, mask = data
    fast = pc.compile(model, (ids,), example_kwargs={"attention_mask": mask}, tuning=False)
    with torch.no_grad():
        torch.testing.assert_close(fast(ids, attention_mask=mask), model(ids, mask))
    with pytest.raises(ProvenmlError, match="1 positional input"):
        fast(attention_mask=mask)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"input_ids"}, r"missing \['attention_mask'\]"),
        ({"input_ids", "attention_mask", "labels"}, r"not compiled for \['labels'\]"),
    ],
)
def test_wrong_keywords_are_named(
    data: tuple[nn.Module, torch.Tensor, torch.Tensor], keywords: set[str], message: str
) -> None:
    model, ids, mask = data
    fast = pc.compile(
        model, example_kwargs={"input_ids": ids, "attention_mask": mask}, tuning=False, threads=1
    )
    given = {"input_ids": ids, "attention_mask": mask, "labels": ids}
    with pytest.raises(ProvenmlError, match=message):
        fast(**{k: given[k] for k in keywords})


def test_bad_examples_are_refused(data: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, ids, _ = data
    # (stop 73: numbers are constants of the compiled code, but some input must be a tensor)
    with pytest.raises(ProvenmlError, match="no tensor among the example inputs"):
        pc.compile(model, example_kwargs={"input_ids": [1, 2]})
    with pytest.raises(ProvenmlError, match="no example inputs"):
        pc.compile(model)
    with pytest.raises(ProvenmlError, match="not a keyword argument name"):
        pc.compile(model, example_kwargs={"input ids": ids})


def test_a_hugging_face_model_by_its_tokenizer_keywords() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    bert = transformers.BertModel(config).eval()
    batch = {
        "input_ids": torch.randint(0, 100, (2, 12)),
        "attention_mask": torch.ones(2, 12, dtype=torch.long),
        "token_type_ids": torch.zeros(2, 12, dtype=torch.long),
    }
    batch["attention_mask"][1, 8:] = 0
    fast = pc.compile(bert, example_kwargs=batch, tuning=False, threads=1)
    with torch.no_grad():
        eager, compiled = bert(**batch), fast(**batch)
    assert type(compiled) is type(eager)
    torch.testing.assert_close(compiled.last_hidden_state, eager.last_hidden_state)
    torch.testing.assert_close(compiled.pooler_output, eager.pooler_output)
