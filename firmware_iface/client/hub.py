"""One reader per bus: ``BusHub`` receives every frame once and hands it to the client of its node.

Several ``JointClient`` objects (one per joint) share a bus; python-can buses have one receive queue, so two
readers would steal frames from each other. ``BusHub.of(bus)`` returns the bus's hub (made on first use).
The hub reads in a daemon thread (``start``), or in the caller's thread with ``poll`` (for lock-step tests
against a free-running virtual joint). It also remembers every node whose heartbeat it has seen (``scan``).

Identity: a frame of another protocol can decode as this profile's heartbeat (an ODrive CANSimple heartbeat of an
idle axis reads as a native heartbeat "idle, torque mode"), and a command to such a node is a frame its own protocol
obeys. A node is *confirmed* (``confirmed``) as a joint of the profile once its heartbeats show the profile's
signature: with a heartbeat counter (``status.counter``), two consecutive heartbeats whose counter advances by one
(a foreign frame's bytes there hold a constant field); without one, ``UNCOUNTED_BEATS`` heartbeats in a row whose
bits outside every signal are zero, as a sender that encodes the message leaves them (a native heartbeat read as an
ODrive one has its counter in the ODrive's reserved bits). A joint that only answers (MIT mode: no heartbeat, a reply
to each command with its id in the payload) is confirmed by its first reply, to the query ``JointClient.identify``
sends (its profile's safest frame: MIT's "exit motor mode").
``JointClient`` writes nothing to a node before it is confirmed.

Recorders are python-can listeners (``add_listener``): every frame the hub receives, and every frame it sends
(``is_rx=False``, time stamped at the send on the clock's wall time), is passed to each listener's
``on_message_received`` with the decoded frame (``Decoded`` or None) as ``listener.on_decoded`` when the listener
has that method. A listener that raises is removed and its error kept in ``last_error``: a recording must not stop
the bus. A handler (a client) that raises is counted (``counters["handler_errors"]``, ``last_error``) and the reader
goes on: one bad frame or one client's bug must not silence every joint on the bus.

Deafness: the reader may be kept from the bus (a process stopped, a loaded machine that does not schedule it, the
GIL held elsewhere) while frames wait in the bus's queue. ``deaf_s()`` adds up the time it was away beyond its receive
timeout, so a client counts a missed heartbeat only over time the host was listening: a stalled host does not blame
its joints (whose own watchdogs keep them safe meanwhile).

A bus that fails under the reader (a remote server gone: python-can-remote's ``WebsocketClosed``; an adapter
unplugged; a bus shut down) is *lost*: ``lost`` holds the cause, reading stops, and every later ``send`` (so every
command, request and wait of the clients on it) raises ``BusError`` naming the bus and the cause. Where the caller
asked for it (``reconnect_with(open_bus_fn, interval_s)``), the reader re-opens the bus every ``interval_s``
until it succeeds and goes on reading; clients, their rings and registrations are kept across it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import can

from actuator.errors import BusError, ProtocolError
from firmware_iface.client.bus import close_bus
from firmware_iface.client.clock import WALL, Clock
from firmware_iface.protocol.capabilities import message_of, replies_only, status_message
from firmware_iface.protocol.check import signal_bits
from firmware_iface.protocol.frame import Frame
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Decoded, Profile

UNCOUNTED_BEATS = 3  # heartbeats that confirm a node whose profile's heartbeat has no counter
READ_TIMEOUT_S = 0.05  # the reader's wait on the bus: longer away from it is deafness (a host stall)
Handler = Callable[[Decoded, float, float], None]  # (frame, receive time on the hub's clock, bus timestamp)
_HUBS: dict[int, BusHub] = {}
_HUBS_LOCK = threading.Lock()


class BusHub:
    """The single reader of a bus, dispatching decoded frames by node id."""

    def __init__(self, bus: can.BusABC, profile: Profile | None = None) -> None:
        self.bus = bus
        self.profile = profile or load_native()
        self.handlers: dict[int, Handler] = {}
        # the frame that tells a node is there (CANopen: the NMT heartbeat; None: a profile without one)
        self.heartbeat_message = message_of(self.profile, "heartbeat") or status_message(self.profile)
        self._replies_only = replies_only(self.profile)
        self.heartbeats: dict[int, tuple[float, dict]] = {}  # node -> (receive time, signals)
        self.confirmed: set[int] = set()  # nodes whose heartbeats show the profile's signature
        self.beats: Counter[int] = Counter()  # heartbeats decoded, by node
        sem = self.profile.sidecar.semantic.get("status.counter")
        self._counter = None if sem is None or sem.message != self.heartbeat_message else (
            sem.signal, 1 << self.profile.signal(sem.message, sem.signal).length)
        self._last_counter: dict[int, int] = {}
        self._streak: Counter[int] = Counter()  # heartbeats in a row with the unused bits zero, by node
        self._unused_bits = 0  # bits of the heartbeat outside every signal: zero in a frame of this profile
        if self.heartbeat_message is not None:
            used = {b for s in self.profile.message(self.heartbeat_message).signals for b in signal_bits(s)}
            self._unused_bits = sum(1 << b for b in range(8 * self.profile.message(self.heartbeat_message).length)
                                    if b not in used)
        self.counters = Counter(rx=0, tx=0, rx_errors=0, bus_errors=0, foreign=0)
        self.last_error = ""
        self._send_lock = threading.Lock()
        self.listeners: list[can.Listener] = []
        self._callbacks: tuple[tuple[can.Listener, Callable, Callable | None], ...] = ()
        self._listen_lock = threading.RLock()  # re-entered: a failing listener is removed from inside _notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None  # why the bus was lost, None while it works
        self.reconnects = 0
        self._reopen: Callable[[], can.BusABC] | None = None
        self._reopen_interval_s = 2.0
        self.clock: Clock = WALL  # receive and send times; a simulated rig's lock-step clock reads for the hub
        # (seconds deaf before the last return from the bus, the time of that return): one tuple, assigned at once,
        # because other threads read it
        self._deaf: tuple[float, float | None] = (0.0, None)

    @classmethod
    def of(cls, bus: can.BusABC, profile: Profile | None = None, *, start: bool = True) -> BusHub:
        """The hub of ``bus``, made on first use (and its reader thread started if ``start``)."""
        with _HUBS_LOCK:
            hub = _HUBS.get(id(bus))
            if hub is None or hub.bus is not bus:
                hub = _HUBS[id(bus)] = cls(bus, profile)
            if start:
                hub.start()
            return hub

    def register(self, node_id: int, handler: Handler) -> None:
        self.handlers[self.profile.check_node(node_id)] = handler

    def unregister(self, node_id: int) -> None:
        self.handlers.pop(node_id, None)

    def add_listener(self, listener: can.Listener) -> None:
        with self._listen_lock:
            self.listeners.append(listener)
            self._bind_listeners()

    def remove_listener(self, listener: can.Listener) -> None:
        """Stop passing frames to ``listener``; a frame already counted is handed to it first (the lock)."""
        with self._listen_lock:
            if listener in self.listeners:
                self.listeners.remove(listener)
                self._bind_listeners()

    def _bind_listeners(self) -> None:
        """Each listener with its two methods, looked up when it is added, not per frame."""
        self._callbacks = tuple((listener, listener.on_message_received, getattr(listener, "on_decoded", None))
                                for listener in self.listeners)

    def _received(self, counter: str, msg: can.Message, decoded: Decoded | None) -> None:
        """Count a received frame and hand it to the listeners, as one step against adding or removing one: a
        recording then holds exactly the frames counted while it was on (before, a recorder removed between the two
        missed a frame already counted: one frame short in test_recording_writes_the_rig_formats on a fresh clone)."""
        with self._listen_lock:
            self.counters[counter] += 1
            if self.listeners:
                self._notify(msg, decoded)

    def _notify(self, msg: can.Message, decoded: Decoded | None) -> None:
        for listener, on_message_received, on_decoded in self._callbacks:
            try:
                on_message_received(msg)
                if on_decoded is not None and decoded is not None:
                    on_decoded(decoded, msg.timestamp)
            except Exception as e:  # a failing recorder is dropped; the bus and the other listeners go on
                self.remove_listener(listener)
                self.last_error = f"listener {type(listener).__name__} removed: {e!r}"
                self.counters["listener_errors"] += 1

    # --- reading -----------------------------------------------------------------------------------------
    def start(self) -> BusHub:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bus-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        self._thread = None

    def close(self) -> None:
        """Stop reading and forget this hub (the bus stays open: its owner shuts it down)."""
        self.stop()
        with _HUBS_LOCK:
            if _HUBS.get(id(self.bus)) is self:
                del _HUBS[id(self.bus)]

    @property
    def threaded(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def deaf_s(self) -> float:
        """Seconds, since the reader started, it was kept from the bus beyond its receive timeout, up to now (0 in
        lock-step and without a reader thread: there the caller's own waits receive)."""
        deaf_s, back_t = self._deaf
        if back_t is None or not self.threaded or self.lost is not None:  # a lost bus: the reader hears silence
            return deaf_s
        return deaf_s + max(0.0, self.clock.now() - back_t - READ_TIMEOUT_S)

    def listen(self, duration_s: float) -> None:
        """Return once the reader has listened ``duration_s``: the time on the hub's clock, lengthened by what of it
        the reader was kept from the bus (a stalled host heard nothing meanwhile)."""
        t0, deaf0 = self.clock.now(), self.deaf_s()
        while (left := duration_s - (self.clock.now() - t0) + (self.deaf_s() - deaf0)) > 0:
            self.clock.sleep(left)

    def _run(self) -> None:
        self._deaf = (self._deaf[0], self.clock.now())
        while not self._stop.is_set():
            if self.lost is None:
                self._receive_one(READ_TIMEOUT_S)
                self._came_back()
            else:
                if self._reopen is None or not self._try_reopen():
                    self._stop.wait(self._reopen_interval_s if self._reopen is not None else 0.05)
                self._deaf = (self._deaf[0], self.clock.now())  # a lost bus is silence heard, not a stalled host

    def _came_back(self) -> None:
        """The reader is back from the bus: time since its last return beyond one receive timeout it was deaf."""
        deaf_s, back_t = self._deaf
        now = self.clock.now()
        self._deaf = (deaf_s + max(0.0, now - back_t - READ_TIMEOUT_S) if back_t is not None else deaf_s, now)

    def reconnect_with(self, open_bus_fn: Callable[[], can.BusABC], interval_s: float = 2.0) -> None:
        """When the bus is lost, re-open it with ``open_bus_fn`` every ``interval_s`` until that succeeds."""
        self._reopen, self._reopen_interval_s = open_bus_fn, interval_s

    def _lose(self, cause: str) -> None:
        self.lost = cause
        self.last_error = f"bus lost: {cause}"
        self.counters["bus_lost"] += 1
        if self._reopen is None:
            self._stop.set()  # nothing more to read; the clients learn it from check_lost

    def _try_reopen(self) -> bool:
        try:
            bus = self._reopen()
        except Exception as e:  # any failure to open is the same answer: not yet
            self.last_error = f"bus lost: {self.lost}; reconnect failed: {e}"
            return False
        old = self.bus
        with _HUBS_LOCK:
            if _HUBS.get(id(old)) is self:
                del _HUBS[id(old)]
            _HUBS[id(bus)] = self
        self.bus, self.lost = bus, None
        self.reconnects += 1
        close_bus(old)  # its server is gone: marked shut even where the adapter's own close fails half way
        return True

    def check_lost(self) -> None:
        """``BusError`` naming the bus and the cause if it is lost."""
        if self.lost is not None:
            raise BusError(f"bus {self.bus.channel_info} lost: {self.lost}")

    def poll(self, timeout_s: float = 0.0) -> int:
        """Receive in this thread until the bus is quiet for ``timeout_s``; the number of frames handled."""
        n = 0
        while self._receive_one(timeout_s):
            n += 1
        return n

    def _receive_one(self, timeout_s: float) -> bool:
        if self.lost is not None:
            return False
        try:
            msg = self.bus.recv(timeout_s)
        except (can.CanError, OSError, ValueError) as e:
            self.counters["bus_errors"] += 1
            self.last_error = f"bus receive: {e}"
            if getattr(self.bus, "_is_shutdown", False):
                self._lose(f"bus shut down ({type(e).__name__}: {e})")
            self._stop.wait(0.05)  # a dead bus must not spin the reader
            return False
        except Exception as e:  # a backend's own error (python-can-remote's WebsocketClosed): gone
            self.counters["bus_errors"] += 1
            self._lose(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            return False
        if msg is None:
            return False
        self.dispatch(msg, self.clock.now())
        return True

    def dispatch(self, msg: can.Message, t: float) -> None:
        """Decode one frame and hand it to its node's client; undecodable frames are counted, never raised."""
        if msg.is_error_frame:
            self._received("error_frames", msg, None)
            return
        try:
            decoded = self.profile.decode(msg)
        except ProtocolError as e:
            self.last_error = str(e)
            self._received("rx_errors", msg, None)
            return
        self._received("rx", msg, decoded)
        if decoded.name == self.heartbeat_message:
            self.heartbeats[decoded.node_id] = (t, decoded.signals)
            self._observe(decoded.node_id, decoded.signals, bytes(msg.data))
        handler = self.handlers.get(decoded.node_id)
        if handler is None:
            self.counters["foreign"] += 1
            return
        try:
            handler(decoded, t, msg.timestamp)
        except Exception as e:  # a client's error must not stop the reader of every joint
            self.counters["handler_errors"] += 1
            self.last_error = f"handler of node {decoded.node_id} on {decoded.name}: {e!r}"

    def _observe(self, node: int, signals: dict, data: bytes) -> None:
        """One heartbeat of ``node`` towards its confirmation (see the module docstring)."""
        self.beats[node] += 1
        if node in self.confirmed:
            return
        if self._replies_only:  # a reply comes only when asked, and carries the node's own id: that is the signature
            self.confirmed.add(node)
            return
        if self._counter is None:
            clean = not int.from_bytes(data, "little") & self._unused_bits
            self._streak[node] = self._streak[node] + 1 if clean else 0
            if self._streak[node] >= UNCOUNTED_BEATS:
                self.confirmed.add(node)
            return
        name, modulus = self._counter
        counter = int(signals[name])
        last = self._last_counter.get(node)
        if last is not None and (counter - last) % modulus == 1:
            self.confirmed.add(node)
        self._last_counter[node] = counter

    def identity(self, node: int) -> str:
        """Why ``node`` is or is not confirmed, in words (for an error or a scan's report)."""
        if node in self.confirmed:
            return f"confirmed as {self.profile.name}"
        beats = self.beats[node]
        if beats == 0 and self._replies_only:
            return f"no {self.profile.name} reply to its query"
        if beats == 0:
            return f"no {self.profile.name} heartbeat heard from it"
        if self._counter is not None and beats >= 2:
            return (f"{beats} frames decode as its {self.heartbeat_message} but their {self._counter[0]} does not "
                    f"advance (stuck at {self._last_counter.get(node)}): another protocol's frame on that id")
        if self._counter is None and beats > self._streak[node] + UNCOUNTED_BEATS:
            return (f"{beats} frames decode as its {self.heartbeat_message} but bits outside its signals are set: "
                    "another protocol's frame on that id")
        return f"{beats} heartbeat(s) heard, not enough to confirm it"

    # --- writing -----------------------------------------------------------------------------------------
    def send(self, msg: can.Message) -> float:
        """Send a frame (serialised between threads); returns the send time (on ``clock``)."""
        self.check_lost()
        with self._send_lock:
            t = self.clock.now()
            try:
                self.bus.send(msg)
            except (can.CanError, OSError, ValueError) as e:
                raise BusError(f"cannot send 0x{msg.arbitration_id:03x} on {self.bus.channel_info}: {e}") from e
            self.counters["tx"] += 1
        if self.listeners:
            sent = Frame(timestamp=self.clock.wall(), arbitration_id=msg.arbitration_id, data=msg.data,
                         is_extended_id=msg.is_extended_id, is_fd=msg.is_fd, is_rx=False, dlc=msg.dlc)
            self._notify(sent, self._decoded_or_none(sent))
        return t

    def _decoded_or_none(self, msg: can.Message) -> Decoded | None:
        try:
            return self.profile.decode(msg)
        except ProtocolError:
            return None

    def nodes(self, max_age_s: float = 1.0) -> dict[int, dict]:
        """Nodes whose heartbeat arrived in the last ``max_age_s``: node -> heartbeat signals."""
        now = self.clock.now()
        return {n: sig for n, (t, sig) in sorted(self.heartbeats.items()) if now - t <= max_age_s}
