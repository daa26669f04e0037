"""Loading the LLaVA teacher from weights that are not on disk: provenml downloads nothing at
run time, so a missing checkpoint must be a clear :class:`ProvenmlError` saying what to do,
not transformers' connection error from deep inside the hub client."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenml.errors import ProvenmlError
from provenml.federated import SHAPES, LlavaTeacher


def test_a_repository_id_not_in_the_cache_names_how_to_fetch_it() -> None:
    pytest.importorskip("transformers")
    with pytest.raises(ProvenmlError, match="not in the local Hugging Face cache") as error:
        LlavaTeacher.from_pretrained("provenml-tests/no-such-llava", classes=SHAPES)
    assert "huggingface-cli download provenml-tests/no-such-llava" in str(error.value)


def test_a_folder_without_the_checkpoint_is_named(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(ProvenmlError, match="that folder lacks the model's"):
        LlavaTeacher.from_pretrained(str(tmp_path), classes=SHAPES)
