"""A production batch in simulation: many joints of one type, each built within its manufacturing tolerances, put
through the rig's measuring steps at once (``jointkit run --population N``).

This module owns ``population_eol``: draw the joints within the spread (``firmware_iface.rig.spread``), run the steps
on them all with the batch executor (``firmware_iface.experiments.batch.run_batch``) and return per-joint figures
with the timing. Limits and verdicts are the caller's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from actuator.params import JointParams, load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.rig.spread import Spread, _value, draw, load_spread


# --- the population EOL -----------------------------------------------------------------------------------------
def _step_keys(steps: list[tuple[str, dict]]) -> list[str]:
    """Step names, a repeated one numbered (``step``, ``step#2``)."""
    seen: dict[str, int] = {}
    keys = []
    for name, _ in steps:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def population_eol(steps: list[tuple[str, dict]], n: int, spread: Spread | str | Path,
                   params: JointParams | str | None = None, seed: int = 0) -> dict[str, Any]:
    """Draw ``n`` joints of ``params`` (default: the spread's preset) within ``spread``, run ``steps`` on them all,
    and return per joint the figures by step, the faults and what was drawn, with the timing. No limits here."""
    t0 = time.perf_counter()
    spread = spread if isinstance(spread, Spread) else load_spread(spread)
    nominal = params if isinstance(params, JointParams) else load_preset(params or spread.preset or "knee")
    drawn = draw(nominal, spread, n, seed)
    t_draw = time.perf_counter() - t0
    batch = run_batch([p for p, _ in drawn], [inj for _, inj in drawn], steps, seed=seed, firmware=nominal,
                      panels=False)
    keys = _step_keys(steps)
    joints = []
    for j, ((p, inj), outcomes) in enumerate(zip(drawn, batch, strict=True)):
        at = batch.fault_step[j]
        joints.append({"joint": j, "figures": {k: o.figures for k, o in zip(keys, outcomes, strict=True)},
                       "faults": batch.faults[j], "fault_step": None if at is None else keys[at],
                       "drawn": {**{t.path: _plain(_value(p, t.path)) for t in spread.parameters}, **inj}})
    timing = {"draw_s": t_draw, **batch.timing, "total_s": time.perf_counter() - t0}
    return {"preset": nominal.name, "spread": spread.source, "n": n, "seed": seed, "steps": keys, "joints": joints,
            "timing": timing}
