"""One torch thread per S7 test: the models are tiny, and two threads on a busy 2-core
machine mostly spin-wait on each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from provenml.core.compute import intra_op_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with intra_op_threads(1):
        yield
