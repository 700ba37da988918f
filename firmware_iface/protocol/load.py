"""Loading a protocol profile: read it (``Profile.load``) and check it (``firmware_iface.protocol.check``), so that
a profile ``jointkit dbc check`` faults is refused with the problems named; and node lists (``--nodes 1,2``) read
against a profile's node range. The one place both meet: ``profile``
knows nothing of ``check``, which builds on it.
"""

from __future__ import annotations

from pathlib import Path

from actuator.errors import ConfigError
from actuator.paths import DBC_DIR
from firmware_iface.protocol.check import check_profile
from firmware_iface.protocol.profile import NATIVE_DBC, NATIVE_SIDECAR, Profile


def load_profile(dbc_path: str | Path, sidecar_path: str | Path | None = None, *, validate: bool = True) -> Profile:
    """Read a DBC and its sidecar; with ``validate`` a profile that ``dbc check`` faults raises ``ConfigError``."""
    profile = Profile.load(dbc_path, sidecar_path)
    if validate:
        problems = check_profile(profile)
        if problems:
            raise ConfigError(f"{dbc_path}: the profile has {len(problems)} problem(s) (see `jointkit dbc "
                              "check`):\n  " + "\n  ".join(str(p) for p in problems))
    return profile


# the profiles shipped in dbc/, by the name ``--profile`` takes: (DBC, sidecar); a DBC path names any other profile
SHIPPED = {
    "native": (NATIVE_DBC, NATIVE_SIDECAR),
    "odrive": (DBC_DIR / "odrive_cansimple_0.5.6.dbc", DBC_DIR / "odrive_cansimple_0.5.6.toml"),
    "odrive-0.6": (DBC_DIR / "odrive_cansimple_0.6.10.dbc", DBC_DIR / "odrive_cansimple_0.6.10.toml"),
    "mit": (DBC_DIR / "mit_ak80_9.dbc", DBC_DIR / "mit_ak80_9.toml"),
    "cia402": (DBC_DIR / "cia402_joint.dbc", DBC_DIR / "cia402_joint.toml"),
}


def load_named(name_or_path: str | Path, sidecar_path: str | Path | None = None) -> Profile:
    """A shipped profile by name (``SHIPPED``), or the DBC at a path with its sidecar (default: the DBC's path with
    .toml, where it exists)."""
    text = str(name_or_path)
    if text in SHIPPED and sidecar_path is None:
        return load_profile(*SHIPPED[text])
    path = Path(name_or_path)
    if not path.is_file() and path.suffix.lower() != ".dbc":
        raise ConfigError(f"--profile {text!r}: no shipped profile of that name and no such DBC file: allowed "
                          f"{', '.join(SHIPPED)} or the path of a DBC")
    if sidecar_path is None and path.with_suffix(".toml").is_file():
        sidecar_path = path.with_suffix(".toml")
    return load_profile(path, sidecar_path)


def load_native(*, validate: bool = True) -> Profile:
    """The bundled native profile, ``dbc/jointkit_native.dbc`` with its sidecar."""
    return load_profile(NATIVE_DBC, NATIVE_SIDECAR, validate=validate)


def parse_nodes(text: str, profile: Profile | None = None) -> list[int]:
    """``"1,2,3"`` or ``"1-3"`` -> [1, 2, 3], each checked against the profile's node range."""
    profile = profile or load_native()
    ids: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            ids += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ConfigError(f"--nodes {text!r}: expected node ids like 1,2,3 or 1-3") from None
    if not ids or len(set(ids)) != len(ids):
        raise ConfigError(f"--nodes {text!r}: node ids must be given once each")
    for i in ids:
        if not profile.sidecar.node_min <= i <= profile.sidecar.node_max:
            raise ConfigError(f"--nodes {text!r}: node id {i} is outside {profile.sidecar.node_min}.."
                              f"{profile.sidecar.node_max}")
    return ids
