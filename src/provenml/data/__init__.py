"""Offline data shared by several systems: generated with a seed or shipped with Python/pip."""

from provenml.data.text import ByteCorpus, load_text_file, stdlib_corpus

__all__ = ["ByteCorpus", "load_text_file", "stdlib_corpus"]
