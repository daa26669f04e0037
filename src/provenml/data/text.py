"""Byte-level text corpora: the Python standard library's own source, or a user's text file."""

from __future__ import annotations

import functools
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from provenml.errors import ProvenmlError


@dataclass(frozen=True)
class ByteCorpus:
    """Train and validation byte streams (``uint8`` tensors) and where they came from."""

    train: torch.Tensor
    valid: torch.Tensor
    source: str
    files: int
    digest: str

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "files": self.files,
            "train_bytes": int(self.train.numel()),
            "valid_bytes": int(self.valid.numel()),
            "sha256": self.digest,
        }


def _is_validation(relative_path: str, valid_fraction: float) -> bool:
    """A deterministic split by file: a hash of the path, not Python's salted ``hash``."""
    bucket = int(hashlib.sha256(relative_path.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < valid_fraction


@functools.lru_cache(maxsize=4)
def stdlib_corpus(
    max_bytes: int | None = 8_000_000, valid_fraction: float = 0.1, root: Path | None = None
) -> ByteCorpus:
    """The ``.py`` files of the running Python's standard library, split into train and
    validation by file (a SHA-256 of the relative path), deterministically.

    Files are read in sorted path order; ``site-packages`` is excluded, so installed packages do
    not change the corpus. ``max_bytes`` caps the train stream (the validation stream gets
    ``valid_fraction`` of it) to bound memory and reading time.
    """
    stdlib = Path(root or sysconfig.get_paths()["stdlib"])
    if not stdlib.is_dir():
        raise ProvenmlError(f"standard library folder {stdlib} not found")
    paths = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and p.is_file()
    )
    if not paths:
        raise ProvenmlError(f"no .py files under {stdlib}")
    train_parts: list[bytes] = []
    valid_parts: list[bytes] = []
    sizes = [0, 0]
    cap_valid = None if max_bytes is None else int(max_bytes * valid_fraction)
    digest = hashlib.sha256()
    used = 0
    for path in paths:
        rel = path.relative_to(stdlib).as_posix()
        is_valid = _is_validation(rel, valid_fraction)
        cap = cap_valid if is_valid else max_bytes
        if cap is not None and sizes[is_valid] >= cap:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        (valid_parts if is_valid else train_parts).append(data)
        sizes[is_valid] += len(data)
        digest.update(rel.encode())
        used += 1
        if max_bytes is not None and sizes[0] >= max_bytes and sizes[1] >= (cap_valid or 0):
            break
    train = _to_tensor(b"".join(train_parts), max_bytes)
    valid = _to_tensor(b"".join(valid_parts), cap_valid)
    return ByteCorpus(train, valid, f"python-stdlib:{stdlib}", used, digest.hexdigest()[:16])


def load_text_file(path: str | Path, valid_fraction: float = 0.1) -> ByteCorpus:
    """A user's own text file as a byte corpus; the last ``valid_fraction`` is validation."""
    file = Path(path)
    if not file.is_file():
        raise ProvenmlError(f"text file {file} does not exist")
    data = file.read_bytes()
    if len(data) < 1024:
        raise ProvenmlError(f"text file {file} has only {len(data)} bytes; need at least 1024")
    cut = int(len(data) * (1 - valid_fraction))
    digest = hashlib.sha256(data).hexdigest()[:16]
    return ByteCorpus(_to_tensor(data[:cut]), _to_tensor(data[cut:]), str(file), 1, digest)


def _to_tensor(data: bytes, cap: int | None = None) -> torch.Tensor:
    if cap is not None:
        data = data[:cap]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
