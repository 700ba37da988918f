"""Running a sequence on a rig: step by step, with verdicts, recordings, results.json, the report and the database.

``run_sequence`` writes DIR/results.json before the first step (verdict ``incomplete``) and again after every
step, each time whole to a temporary file renamed over the old one, so a run killed at any moment leaves a
readable results.json that says how far it got. Raw frames (DIR/frames.blf) and decoded signals (DIR/signals.mf4)
are recorded from the rig's bus by listeners of its hub (``firmware_iface.rig.recording``).

Verdicts: a step passes when all its checks (figures against the sequence's limits) pass; a check whose figure is
missing or not finite fails. A joint fault during a step fails the step (the unit failed); the rig's own trouble
(timeouts, bus errors, a step that cannot run here) is an ``error``. Either stops the sequence. The run's verdict
is ``error`` if a step errored, else ``fail`` if a step failed, else ``pass``; ``incomplete`` when interrupted
(Ctrl-C, SIGTERM) or killed. Whatever ends the run, the joints are disabled and the recordings closed.

Recordings: the hub drops a recorder that raises (a full disk, a write error: ``BusHub.add_listener``) so that the
bus goes on. After every step and at the end the runner checks that both are still attached and that they closed
cleanly; each loss is listed in ``recording_errors`` (the file, the step it was noticed after, the error) and in
``error``, and makes the verdict ``error`` (exit 2), also over a ``fail``, as a step error does. The measurements
themselves come from the clients, not the recorders, so the sequence runs on and its figures and checks are kept;
but the run's raw frames or signals are missing, a rig fault and not the unit's: not ``fail`` (which would count
the unit as defective in the yield; ``error`` runs are left out of it) and not ``pass`` (a unit whose test record
is incomplete is retested, not shipped).

An interrupted run (Ctrl-C, SIGTERM) is stored as ``incomplete`` with its steps as far as they got (``running``,
``pending``); the database leaves such runs out of the yield and out of every check's statistics (Cp, Cpk: see
``results_db.summary``), and ``jointkit results add`` stores a killed run's results.json the same way.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from actuator.errors import ConfigError, FaultError, JointkitError
from actuator.params import preset_path
from firmware_iface.experiments.certificate import judge_all
from firmware_iface.experiments.protocols import Outcome
from firmware_iface.jsonsafe import json_safe as clean
from firmware_iface.protocol.profile import Profile
from firmware_iface.rig.recording import FrameRecorder, SignalRecorder
from firmware_iface.rig.report import save_plot, write_report
from firmware_iface.rig.rig import Rig
from firmware_iface.rig.sequence import Sequence, Step
from firmware_iface.rig.steps import run_step, unmet_needs

SCHEMA = "jointkit.results/1"
FREQUENCY_PLOTS = ("bode", "tune")
EXIT_CODES = {"pass": 0, "fail": 1, "error": 2, "incomplete": 2}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(clean(data), f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def tool_version(pyproject: Path = PYPROJECT) -> str:
    """The installed jointkit's version; from a source tree that is not installed, its pyproject.toml's; else
    ``unknown`` (a results file is still written: the version is for tracing, not a reason to stop a run)."""
    try:
        return importlib.metadata.version("jointkit")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return "unknown"


def profile_identity(profile: Profile) -> dict[str, Any]:
    """Name, version and the sha256 of the profile's DBC and sidecar bytes: which protocol the run spoke."""
    digest = hashlib.sha256()
    files = [f for f in (profile.dbc_path, profile.sidecar.path) if f is not None]
    for f in files:
        digest.update(Path(f).read_bytes())
    return {"name": profile.sidecar.name, "version": profile.sidecar.version,
            "files": [str(f) for f in files], "sha256": digest.hexdigest() if files else None}


def preset_identity(name_or_path: str) -> dict[str, Any]:
    """Name, file and the sha256 of the file's bytes of the joint preset a run used (the simulated joints' model, or
    on a bus the model the sequence's gain checks use); ``sha256`` None when the preset cannot be read."""
    try:
        path = preset_path(name_or_path)
        return {"name": str(name_or_path), "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    except (ConfigError, OSError):
        return {"name": str(name_or_path), "path": None, "sha256": None}


def default_rig_id() -> str:
    """The rig's id when none is given: ``JOINTKIT_RIG_ID`` (set once per station), else the host's name."""
    return os.environ.get("JOINTKIT_RIG_ID") or platform.node() or "unknown"


def default_out_dir(serial: str | None) -> Path:
    """A run's output folder when none is given: out/run-SERIAL, or out/run-TIME without a serial number."""
    return Path("out") / f"run-{serial or datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_metadata(seq: Sequence, serial: str | None, profile: Profile, *, rig_id: str | None = None,
                 preset: str | None = None) -> dict[str, Any]:
    """What a results file or a recording needs to be traced: tool, profile, preset, unit, sequence, rig, machine.
    ``gains_sha256`` is filled in when the run ends (``gains_digest``)."""
    return {"jointkit_version": tool_version(), "profile": profile_identity(profile),
            "preset": preset_identity(preset or seq.preset), "serial": serial, "rig_id": rig_id or default_rig_id(),
            "sequence": seq.name, "sequence_sha256": seq.sha256, "host": platform.node(),
            "python": platform.python_version(), "gains_sha256": None}


GAIN_FIGURES = ("gains", "gains_written")  # a gains step's and a calibration's (write_gains) tables written


def gains_digest(steps: list[dict]) -> str | None:
    """The sha256 of the gain tables the run wrote into the joints (read back), in step order, as canonical JSON
    of [[step index, figure, {gain: value}], ...]; None when the run wrote none."""
    written = [[s["index"], f, s["figures"][f]] for s in steps for f in GAIN_FIGURES
               if isinstance(s.get("figures", {}).get(f), dict) and s["figures"][f]]
    if not written:
        return None
    return hashlib.sha256(json.dumps(clean(written), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def certificate_id(serial: str | None, started_utc: str, step_index: int, quantity: str) -> str:
    """A calibration certificate's id: ``CAL-`` and 16 hex digits of the sha256 of the unit, the run's start, the
    step and the quantity; unique per certificate, and the same whenever the same results are read again."""
    key = f"{serial or ''}|{started_utc}|{step_index}|{quantity}"
    return "CAL-" + hashlib.sha256(key.encode()).hexdigest()[:16].upper()


def new_results(seq: Sequence, serial: str | None, rig_info: dict, metadata: dict | None = None) -> dict:
    return {"schema": SCHEMA, "metadata": metadata or {},
            "sequence": {"name": seq.name, "path": str(seq.path), "sha256": seq.sha256},
            "serial": serial, "started_utc": utc_now(), "finished_utc": None, "rig": rig_info,
            "verdict": "incomplete", "failed_checks": [], "error": None, "recording_errors": [],
            "steps": [{"index": s.index, "name": s.name, "type": s.type, "node": s.node, "status": "pending",
                       "started_s": None, "duration_s": None, "figures": {}, "checks": [], "error": None,
                       "plot": None, "certificates": []} for s in seq.steps],
            "outputs": {"results": "results.json", "report": "report.html", "frames": "frames.blf",
                        "signals": "signals.mf4"}}


UNITS = (("_nm_s_per_rad", "N·m·s/rad"), ("_nm_per_rad", "N·m/rad"), ("_kg_m2", "kg·m²"), ("_nm", "N·m"),
         ("_kg", "kg"), ("_m", "m"), ("_n", "N"), ("_rad", "rad"), ("_hz", "Hz"), ("_pct", "%"), ("_k", "K"),
         ("_c", "°C"), ("_s", "s"))


def unit_of(figure: str) -> str:
    return next((unit for suffix, unit in UNITS if figure.endswith(suffix)), "")


def checks_of(step: Step, figures: dict[str, Any]) -> list[dict]:
    out = []
    for fig, lim in step.limits.items():
        value = figures.get(fig)
        out.append({"name": f"{step.name}.{fig}", "figure": fig, "value": value, "min": lim.min, "max": lim.max,
                    "unit": unit_of(fig), "verdict": lim.verdict(value)})
    return out


def _plot(out_dir: Path, step: Step, outcome: Outcome) -> str | None:
    if not outcome.panels:
        return None
    rel = f"plots/{step.index:02d}-{step.name}.png"
    freq = step.type in FREQUENCY_PLOTS
    save_plot(out_dir / rel, f"{step.name} ({step.type}, node {step.node})", outcome.panels,
              xlabel="frequency (Hz)" if freq else "time (s)", logx=freq)
    return rel


def _run_one(rig: Rig, seq: Sequence, step: Step, entry: dict, out_dir: Path, t_run0: float, results: dict) -> bool:
    """Run one step into its results entry; False when the sequence must stop."""
    t0 = time.perf_counter()
    entry.update(status="running", started_s=t0 - t_run0)
    go_on = True
    try:
        with rig.keepalive.paused():
            outcome = run_step(rig, seq, step)
        entry["figures"] = outcome.figures
        entry["checks"] = checks_of(step, outcome.figures)
        # a calibration's certificates, judged by the same limits as its checks
        entry["certificates"] = [{"id": certificate_id(results["serial"], results["started_utc"], step.index,
                                                      c["quantity"]), **c}
                                 for c in judge_all(outcome.certificates, step.limits, outcome.figures)]
        entry["status"] = "fail" if any(c["verdict"] != "pass" for c in entry["checks"]) else "pass"
        entry["plot"] = _plot(out_dir, step, outcome)
    except FaultError as e:
        entry.update(status="fail", error=str(e))
        entry["checks"] = checks_of(step, {})
        go_on = False
    except JointkitError as e:
        entry.update(status="error", error=f"{type(e).__name__}: {e}")
        go_on = False
    except Exception as e:  # a bug, not the unit: the run is an error (exit 2), the joints are still stopped safely
        entry.update(status="error", error=f"internal error: {type(e).__name__}: {e}")
        go_on = False
    entry["duration_s"] = time.perf_counter() - t0
    return go_on


def _verdict(results: dict) -> str:
    statuses = [s["status"] for s in results["steps"]]
    if "error" in statuses or results["recording_errors"]:
        return "error"
    return "fail" if "fail" in statuses else "pass"


class _Recordings:
    """The run's recorders on the rig's hub, and what became of them."""

    def __init__(self, rig: Rig, out_dir: Path, results: dict) -> None:
        self.hub, self.errors = rig.hub, results["recording_errors"]
        outputs = results["outputs"]
        self.recorders = {outputs["frames"]: FrameRecorder(out_dir / outputs["frames"])}
        metadata = {k: v for k, v in results["metadata"].items() if k not in ("profile", "preset")}
        profile = results["metadata"].get("profile") or {}
        preset = results["metadata"].get("preset") or {}
        metadata.update(profile=profile.get("name"), profile_sha256=profile.get("sha256"), preset=preset.get("name"),
                        preset_sha256=preset.get("sha256"), verdict="incomplete")
        self.signals = SignalRecorder(out_dir / outputs["signals"], rig.hub.profile, metadata=metadata)
        self.recorders[outputs["signals"]] = self.signals
        self.lost: set[str] = set()
        for recorder in self.recorders.values():
            self.hub.add_listener(recorder)

    def check(self, step: str | None) -> None:
        """Note every recorder the hub has dropped since the last check (``step``: the step just run)."""
        for name, recorder in self.recorders.items():
            if name not in self.lost and recorder not in self.hub.listeners:
                self.lost.add(name)
                kind = type(recorder).__name__
                # the hub keeps the last error only: it names this recorder unless another error came after it
                said = self.hub.last_error if self.hub.last_error.startswith(f"listener {kind} ") else ""
                self.errors.append({"file": name, "step": step,
                                    "error": said or f"listener {kind} removed by the bus hub after an error"})

    def close(self, verdict: str) -> None:
        """Detach and close every recorder (the signals' header gets the run's ``verdict``); a recorder that cannot
        finish its file is a recording error too."""
        self.check(None)
        self.signals.set_metadata(verdict=verdict)
        for name, recorder in self.recorders.items():
            self.hub.remove_listener(recorder)
            try:
                recorder.stop()
            except Exception as e:  # the results must still be written: this is reported, not raised
                if name not in self.lost:
                    self.lost.add(name)
                    self.errors.append({"file": name, "step": None, "error": f"closing: {type(e).__name__}: {e}"})


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, transient=False)


def run_sequence(seq: Sequence, rig: Rig, out_dir: Path, *, serial: str | None = None,
                 console: Console | None = None, rig_id: str | None = None) -> dict:
    """Run every step on ``rig``, writing the outputs into ``out_dir``; the results (see the module docstring). A
    sequence with steps the joints' profile cannot run is refused before anything is sent (``ConfigError``)."""
    unmet = unmet_needs(seq, rig.hub.profile)
    if unmet:
        raise ConfigError(f"sequence {seq.name}: profile {rig.hub.profile.name} cannot run it, nothing was sent: "
                          + "; ".join(unmet))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plots").mkdir(exist_ok=True)
    metadata = run_metadata(seq, serial, rig.hub.profile, rig_id=rig_id, preset=rig.info.get("preset"))
    results = new_results(seq, serial, rig.info, metadata)
    write_json(out_dir / "results.json", results)
    recordings = _Recordings(rig, out_dir, results)
    t_run0 = time.perf_counter()
    console = console or Console(stderr=True)
    complete = False
    try:
        with _progress(console) as progress:
            task = progress.add_task(f"{seq.name} {serial or ''}".strip(), total=len(seq.steps))
            for step, entry in zip(seq.steps, results["steps"], strict=True):
                progress.update(task, description=f"{seq.name}: {step.name}")
                go_on = _run_one(rig, seq, step, entry, out_dir, t_run0, results)
                recordings.check(step.name)
                write_json(out_dir / "results.json", results)
                progress.advance(task)
                if not go_on:
                    break
        for entry in results["steps"]:
            if entry["status"] == "pending":
                entry["status"] = "skipped"
        complete = True
    except KeyboardInterrupt:
        results.update(verdict="incomplete", error="interrupted (Ctrl-C or SIGTERM): joints disabled")
    finally:
        problems = rig.safe_stop()
        results["safe_stop"] = rig.stop_report
        recordings.close(_verdict(results) if complete else "incomplete")
        if complete:  # after the recordings are closed: a recorder that could not finish its file counts
            results["verdict"] = _verdict(results)
        lost = [f"recording {r['file']} lost: {r['error']}" for r in results["recording_errors"]]
        if problems or lost:
            results["error"] = "; ".join(filter(None, [results["error"], *lost, *problems]))
        results["failed_checks"] = [c["name"] for s in results["steps"] for c in s["checks"] if c["verdict"] != "pass"]
        results["finished_utc"] = utc_now()
        results["metadata"]["gains_sha256"] = gains_digest(results["steps"])
        results["duration_s"] = time.perf_counter() - t_run0
        write_json(out_dir / "results.json", results)
        write_report(clean(results), out_dir)
    return results
