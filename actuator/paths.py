"""Where jointkit's data lives: the protocol profiles (``dbc/``) and the presets, gains, spread and sequences
(``seeds/``). In a checkout (and an editable install) they are the repository's folders; an installed wheel carries
them as data files under ``<prefix>/share/jointkit/`` (pyproject.toml). Standard library only: cheap to import."""

from __future__ import annotations

import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (``"dbc"`` or ``"seeds"``): the checkout's when this module runs from one, else the
    installed copy's (the first of ``sys.prefix`` and ``sys.base_prefix`` that has it)."""
    here = _CHECKOUT / name
    if here.is_dir():
        return here
    for prefix in (sys.prefix, sys.base_prefix):
        installed = Path(prefix) / "share" / "jointkit" / name
        if installed.is_dir():
            return installed
    return here  # not found: the errors that follow name the checkout's path


SEEDS_DIR = data_dir("seeds")  # presets (joints/), gains/, sequences/, spread.toml
DBC_DIR = data_dir("dbc")  # the shipped protocol profiles
