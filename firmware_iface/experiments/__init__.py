"""Experiments: the only definitions of the joint tests (``protocols``: segments and analyses) and their executors:
``bus`` (one joint over its bus; ``grid`` puts its runs on the analyses' grid), ``batch`` (many simulated joints at
once), ``inprocess`` (one simulated joint's firmware called directly), ``replay`` (a step or Bode test re-analysed
from a recording); ``tune`` measures a tuned loop on a joint. Modules are imported where used: this package imports
nothing itself.
"""
