"""Find and import every system's ``experiments`` module so that its experiments register."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import provenml

_loaded = False
unavailable: dict[str, str] = {}
"""System packages whose experiments could not be imported, with the reason (e.g. a missing
optional dependency), so that ``provenml list`` can say what to install."""


def load_experiment_modules() -> None:
    """Import ``provenml.<system>.experiments`` for every subpackage that has one (once)."""
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(provenml.__path__):
        if not module.ispkg or module.name in ("core", "data", "nn", "rl"):
            continue
        qualified = f"provenml.{module.name}.experiments"
        try:  # find_spec imports the system package itself, which may need an optional extra
            if importlib.util.find_spec(qualified) is None:
                continue
            importlib.import_module(qualified)
        except ImportError as exc:  # an optional extra is not installed
            unavailable[module.name] = f"{exc} (pip install 'provenml[all]')"
    _loaded = True
