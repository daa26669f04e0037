"""provenml: eleven ML research systems as usable PyTorch components, each with a laptop-scale
reproduction of its paper's headline claim (``provenml list`` / ``provenml reproduce``)."""

__version__ = "0.1.0"
