"""Finding the joints on a bus: listen for heartbeats; with ``query``, ask every confirmed joint for its protocol
version.

``listen`` returns the nodes whose heartbeat arrived while it listened; ``scan`` adds each node's state, mode,
fault names (from its last heartbeat), whether its heartbeats confirmed it as a joint of the profile
(``confirmed``, and ``identity`` in words: ``BusHub``) and, only when asked (``query``) and only of a confirmed node,
``profile_version`` (read with ``param_read``; ``None`` when not asked, when the node does not answer within the
timeout, refuses, or the profile has no such parameter). A scan is passive by default: it sends nothing, so a node of
another protocol on the bus is reported (unconfirmed), never written to. Both read through the bus's
``BusHub`` (made and started on first use, and left running for the bus's owner to close), so they can be called
on a bus that ``JointClient`` objects already use.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import can
import numpy as np

from actuator.errors import ConfigError, TimeoutError
from firmware_iface.client.hub import BusHub
from firmware_iface.client.joint import JointClient
from firmware_iface.defaults import LISTEN_S
from firmware_iface.protocol.capabilities import provided, replies_only, require
from firmware_iface.protocol.profile import Profile

# A joint answers param_read within its next control chunk (1 ms on the virtual joint); 0.2 s is generous for a
# loaded bus and a busy host, and the nodes are asked in parallel, so a silent one costs the scan 0.2 s at most.
VERSION_TIMEOUT_S = 0.2
VERSION_PARAM = "profile_version"


def wire_value(profile: Profile, value: float) -> float:
    """A parameter value as the reply's signal carries it: float32 values as their shortest decimal (0.1, not
    0.10000000149011612); values of other signal types unchanged."""
    signal = profile.signal(*profile.semantic("reply.param_value"))
    if signal.is_float and signal.length == 32 and math.isfinite(value):
        return float(str(np.float32(value)))
    return float(value)


def listen(bus: can.BusABC, profile: Profile | None = None, listen_s: float = LISTEN_S) -> dict[int, dict[str, Any]]:
    """The nodes whose heartbeat arrived during the next ``listen_s`` seconds of listening (``BusHub.listen``): node
    id -> its last heartbeat's signals (sorted by node id). ``profile`` is used only if the bus has no hub yet."""
    _check_listen(listen_s)
    hub = BusHub.of(bus, profile)
    t0 = time.perf_counter()
    hub.listen(listen_s)
    return hub.nodes(time.perf_counter() - t0)


def _check_listen(listen_s: float) -> None:
    if not (isinstance(listen_s, int | float) and math.isfinite(listen_s) and listen_s > 0):
        raise ConfigError(f"listen_s = {listen_s!r}: must be a positive number of seconds")


def _read_version(client: JointClient, timeout_s: float) -> float | None:
    try:
        return wire_value(client.profile, client.read_param(VERSION_PARAM, timeout_s))
    except (TimeoutError, ConfigError):  # silent, or refused (unknown_param): listed, version unknown
        return None


def scan(bus: can.BusABC, profile: Profile | None = None, listen_s: float = LISTEN_S, *, query: bool = False,
         timeout_s: float = VERSION_TIMEOUT_S, nodes: list[int] | None = None) -> list[dict[str, Any]]:
    """The nodes heard on ``bus``: ``[{"node_id", "state", "mode", "faults", "confirmed", "identity",
    "profile_version"}]`` by node id.

    ``faults`` are the names of the heartbeat's fault bits; ``profile_version`` is asked (``query``) of confirmed
    nodes only, and ``None`` for a node not asked or that does not answer ``param_read`` within ``timeout_s``. An
    empty list when no heartbeat arrives in ``listen_s``. A joint that only answers (MIT mode) is not heard by
    listening: with ``query`` each of ``nodes`` (only those: the query is a write) is sent its profile's query.
    """
    hub = BusHub.of(bus, profile)
    profile = hub.profile
    require(profile, "heartbeat", command="scan")
    if replies_only(profile):
        return _ask(bus, profile, nodes or [], timeout_s) if query else []
    found = listen(bus, profile, listen_s)
    sem = profile.sidecar.semantic
    heard = hub.heartbeat_message  # what a scan hears: the heartbeat (CANopen's NMT heartbeat has no 402 state)
    mode_sig, faults_sig = (sem[k].signal if k in sem and sem[k].message == heard else None
                            for k in ("status.mode", "status.faults"))
    rows = [{"node_id": node_id, "state": _heard_state(profile, hub, sig), "mode": sig.get(mode_sig),
              "faults": profile.fault_names(int(sig.get(faults_sig, 0))), "confirmed": node_id in hub.confirmed,
              "identity": hub.identity(node_id), "profile_version": None}
             for node_id, sig in found.items()]
    asked = [n for n in rows if n["confirmed"]]
    if not (query and asked) or VERSION_PARAM not in profile.sidecar.params or not provided(profile)["parameters"]:
        return rows
    previous = {n["node_id"]: hub.handlers.get(n["node_id"]) for n in asked}
    # capacity 2: these clients only wait for one reply, their telemetry rings are never read
    clients = [JointClient(bus, n["node_id"], profile, capacity=2) for n in asked]
    try:
        with ThreadPoolExecutor(max_workers=min(len(clients), 16), thread_name_prefix="scan") as pool:
            versions = list(pool.map(lambda c: _read_version(c, timeout_s), clients))
    finally:
        for client in clients:
            client.close()
            handler = previous[client.node_id]
            if handler is not None:  # a client of the caller's had this node: give it back its frames
                hub.register(client.node_id, handler)
    for node, version in zip(asked, versions, strict=True):
        node["profile_version"] = version
    return rows


def _ask(bus: can.BusABC, profile: Profile, nodes: list[int], timeout_s: float) -> list[dict[str, Any]]:
    """Each of ``nodes`` sent the profile's query (MIT: exit motor mode); those that answer, with their status."""
    if not nodes:
        raise ConfigError(f"profile {profile.name}: its joints only answer, so a scan must ask them, and only the "
                          "nodes named (--nodes 1,2): the query is a write")
    out = []
    for node in nodes:
        client = JointClient(bus, node, profile, capacity=2)
        try:
            client.identify(max(timeout_s, 0.1))
        except TimeoutError:
            continue
        finally:
            client.close()
        out.append({"node_id": node, "state": client.state, "mode": client.mode, "faults": client.faults,
                    "confirmed": True, "identity": client.hub.identity(node), "profile_version": None})
    return out


def _heard_state(profile: Profile, hub: BusHub, signals: dict[str, Any]) -> Any:
    """The state a heartbeat says: its status.state, or CANopen's NMT state where the 402 state is elsewhere."""
    sem = profile.sidecar.semantic
    for name in ("status.state", "status.nmt"):
        if name in sem and sem[name].message == hub.heartbeat_message:
            return signals.get(sem[name].signal)
    return None


def detect(bus: can.BusABC, profiles: dict[str, Profile], listen_s: float = LISTEN_S) -> list[dict[str, Any]]:
    """Which profile each node on ``bus`` speaks, sending nothing: the frames heard in ``listen_s`` are read with each
    profile as its ``BusHub`` reads them, and a node is listed with every profile its heartbeats confirm it as
    (``matches``) and, where none does, the profiles whose heartbeat it merely decodes as (``decodes_as``)."""
    _check_listen(listen_s)
    hub = BusHub.of(bus, next(iter(profiles.values())))
    heard = can.BufferedReader()  # every frame the hub receives, in order
    hub.add_listener(heard)
    try:
        hub.listen(listen_s)
    finally:
        hub.remove_listener(heard)
    frames = list(iter(lambda: heard.get_message(0.0), None))
    nodes: dict[int, dict[str, Any]] = {}
    for name, profile in profiles.items():
        if not provided(profile)["heartbeat"] or replies_only(profile):
            continue  # a joint that only answers (MIT) is not heard by listening
        reader = BusHub(bus, profile)  # never started: it only reads the frames collected
        for msg in frames:
            reader.dispatch(msg, msg.timestamp)
        for node in reader.beats:
            row = nodes.setdefault(node, {"node_id": node, "matches": [], "decodes_as": [], "state": None})
            if node in reader.confirmed:
                row["matches"].append(name)
                row["state"] = row["state"] or _heard_state(profile, reader, reader.heartbeats[node][1])
            else:
                row["decodes_as"].append(name)
    return [nodes[n] for n in sorted(nodes)]
