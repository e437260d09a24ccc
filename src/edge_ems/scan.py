"""A safe Modbus scanner: which unit ids answer, whether they speak SunSpec, which map fits.

Read only by construction: every request goes through :class:`ReadOnlyModbus`, which can
read holding and input registers (functions 3 and 4) and nothing else, and the SunSpec
discovery borrowed from :mod:`edge_ems.sunspec` gets a unit whose writes are refused before
they reach the link. Requests are paced to a rate, one at a time.

The device layer's handling of an unreliable peer is the scanner's too: the link retries a
dropped connection, a garbled answer and a "busy" answer (silence is not retried: at a scan
it means nobody is there), and reads go through the same block reader, which halves reads a
capped device refuses and learns its cap, once per unit id, for every later read of it.

A unit is present when it answers something a device says: registers, or an exception that
shows it parsed the request (illegal function, address or value). Silence and a gateway's
"no such device" answers (device failure, gateway path unavailable, target failed to
respond) mean nobody is there. For each present unit the scanner looks for a SunSpec map at
40000, 0 and 50000 and names every device of its chain, then probes every catalog point
map: it reads the map's readable points in the blocks the map plans and scores how well the
answers fit (:func:`score_fit`). Timeouts and exceptions on those probes are evidence that a
map does not fit, never errors. :meth:`ScanReport.found` lists what was found as plain
data, a SunSpec chain's devices before any point-map guess.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

from .exceptions import (
    ConfigError,
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionError,
    DeviceTimeoutError,
    WriteRefusedError,
)
from .metrics import METRICS
from .modbus import Endpoint, LinkSettings, ModbusLink
from .modbus.decode import decode_point
from .modbus.reader import BlockReader, ReadCap, Span
from .pointmap import Point, PointMap, RegisterSpace
from .pointmap.plan import limits_of
from .readings import Quality, Value
from .sunspec.discovery import BASE_ADDRESSES, MARKER
from .sunspec.survey import ChainDevice, survey

DEFAULT_PORT = 502
PRESENT_CODES = frozenset({1, 2, 3})
"""Exception codes only a device that parsed the request sends."""
SUGGESTIONS = 3
"""Maps a report names per unit."""

# A value outside these, by unit, is implausible for any device: a frequency of 0 Hz, a
# state of charge of 300 %. Points with their own valid_range use that instead.
PLAUSIBLE: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "W": (-1e6, 1e6), "var": (-1e6, 1e6), "VA": (-1e6, 1e6), "V": (0.0, 1500.0),
        "A": (-5000.0, 5000.0), "Hz": (45.0, 65.0), "%": (0.0, 100.0), "°C": (-40.0, 150.0),
        "Wh": (0.0, 1e13), "varh": (0.0, 1e13), "Ah": (0.0, 1e5), "s": (0.0, 1e10),
        "°": (-360.0, 360.0), "W/m²": (0.0, 2000.0), "m/s": (0.0, 100.0),
        "hPa": (800.0, 1100.0), "mm": (0.0, 1e6),
    }
)  # fmt: skip
IDENTIFY_WEIGHT = 4.0
"""What one matching ``identify`` pattern is worth, in points' worth of evidence."""
CAP_REFUSAL = frozenset({3})
"""Answers a probe splits a block on: illegal data value, what a capped gateway says. An
illegal address is what a device says of registers a map wrongly expects: no split."""
PROBE_BUDGET = 16
"""Requests a map's probe may spend beyond two for each block it plans."""


def parse_target(target: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port)."""
    match = re.fullmatch(
        r"\[(?P<v6>[^\]]+)\](?::(?P<v6port>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?",
        target,
    )
    if match is None:
        raise ConfigError(f"not HOST[:PORT]: {target!r}")
    host = match["v6"] or match["host"]
    port = int(match["v6port"] or match["port"] or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is outside 1-65535")
    return host, port


def parse_units(spec: str) -> list[int]:
    """Unit ids from ``1-10``, ``3`` or ``1,3,5-7`` (Modbus unit ids are 0-247)."""
    units: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ConfigError(f"not a unit id range: {part!r}") from None
        if not 0 <= low <= high <= 247:
            raise ConfigError(f"unit ids run from 0 to 247, low to high: {part!r}")
        units.extend(unit for unit in range(low, high + 1) if unit not in units)
    return units


class RateLimiter:
    """Spaces calls of :meth:`wait` at least ``1 / rate`` seconds apart."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ConfigError(f"the request rate must be positive, got {rate}")
        self._interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next = -math.inf

    async def wait(self) -> None:
        """Return when the next request may go."""
        now = self._clock()
        if now < self._next:
            await self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


class ReadOnlyModbus:
    """Reads registers through a link, paced; the scanner's only way to the devices."""

    __slots__ = ("_limiter", "_link", "requests")

    def __init__(self, link: ModbusLink, limiter: RateLimiter) -> None:
        self._link = link
        self._limiter = limiter
        self.requests = 0

    async def read(self, unit: int, space: RegisterSpace, address: int, count: int) -> list[int]:
        """Read ``count`` registers of ``space`` (function 3 or 4)."""
        await self._limiter.wait()
        self.requests += 1
        return await self._link.read("scan", unit, space, address, count)


class ReadOnlyUnit:
    """One unit id as :class:`edge_ems.sunspec.transport.Registers`, for SunSpec discovery:
    its reads go through :class:`ReadOnlyModbus`, its writes are refused right here."""

    def __init__(self, modbus: ReadOnlyModbus, unit: int) -> None:
        self._modbus, self._unit = modbus, unit

    async def read_holding_registers(self, address: int, count: int) -> list[int]:
        """Read holding registers (function 3)."""
        return await self._modbus.read(self._unit, RegisterSpace.HOLDING, address, count)

    async def write_registers(self, address: int, values: list[int]) -> None:
        """Refuse: the scanner never writes."""
        raise WriteRefusedError("the scanner never writes", reason="not_allowed")


@dataclass(frozen=True, slots=True)
class SunSpecFinding:
    """A SunSpec map found on a unit."""

    base: int
    models: tuple[int, ...]
    """The chain's model ids; empty when the chain could not be read."""
    devices: tuple[ChainDevice, ...]
    """Every device of the chain (an inverter and its meters): its place, models and who it
    says it is (``identity`` ``None`` where its common model is unreadable)."""
    error: str | None = None
    """Why the chain could not be read, if it could not."""


@dataclass(frozen=True, slots=True)
class MapFit:
    """How well a point map fits what a unit answered."""

    map_id: str
    score: float
    """Evidence earned over evidence possible, 0 to 1."""
    informative: int
    """Points read with a plausible value that tells something."""
    answered: int
    """Points the unit answered."""
    probed: int
    identified: bool | None
    """Whether the map's ``identify`` patterns matched; ``None`` if it has none."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UnitReport:
    """What one unit id answered."""

    unit: int
    present: bool
    answer: str
    """The first telling answer: registers, an exception, silence."""
    sunspec: SunSpecFinding | None = None
    fits: tuple[MapFit, ...] = ()
    """Every map with informative answers, best first."""

    @property
    def suggestions(self) -> tuple[MapFit, ...]:
        """The best fits."""
        return self.fits[:SUGGESTIONS]


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The outcome of a scan."""

    target: str
    units: tuple[UnitReport, ...]
    requests: int
    writes: int = field(default=0, init=False)
    """Always 0: said explicitly, since that is the scanner's promise."""

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = asdict(self)
        for unit, report in zip(data["units"], self.units, strict=True):
            unit["suggestions"] = [fit.map_id for fit in report.suggestions]
        data["found"] = self.found()
        return data

    def found(self) -> list[dict[str, Any]]:
        """What was found, as plain data a site file entry is written from, best first for
        each unit: every device of a SunSpec chain (``kind`` ``sunspec``, ``unit_id``,
        ``base_address``, ``device_index``, ``fit`` 1.0 and its identity), then the point
        maps that fit (``kind`` ``modbus``, ``unit_id``, ``point_map``, ``fit``), best
        first. A map's guess ranks below a chain: the marker and the chain are proof, a fit
        is evidence."""
        found: list[dict[str, Any]] = []
        for unit in self.units:
            if unit.sunspec is not None:
                found += [
                    {"kind": "sunspec", "unit_id": unit.unit, "base_address": unit.sunspec.base,
                     "device_index": device.index, "point_map": None, "fit": 1.0,
                     "identity": device.as_json()["identity"]}
                    for device in unit.sunspec.devices
                ]  # fmt: skip
            found += [
                {"kind": "modbus", "unit_id": unit.unit, "base_address": None,
                 "device_index": None, "point_map": fit.map_id, "fit": fit.score,
                 "identity": None}
                for fit in unit.suggestions
            ]  # fmt: skip
        return found


def _plausible_range(point: Point) -> tuple[float, float] | None:
    if point.valid_range is not None:
        return point.valid_range
    unit = METRICS[point.metric].unit
    return None if unit is None else PLAUSIBLE.get(unit)


INFORMATIVE = 2.0
"""Evidence of a plausible value that says something; an answer alone earns half of it."""
ANSWERED = 1.0
IMPLAUSIBLE = -1.0


def point_evidence(point: Point, value: Value, quality: Quality) -> float:
    """What one answered point says for a map.

    :data:`INFORMATIVE` for a plausible value that tells something: a number other than 0,
    a text, an enum's named value other than the one for 0. :data:`ANSWERED` for an answer
    that tells nothing (devices read unused registers as 0), :data:`IMPLAUSIBLE` for a value
    the map rules out or no device would report.
    """
    if quality is Quality.INVALID:
        return IMPLAUSIBLE
    if value is None or isinstance(value, bool):
        return ANSWERED
    if isinstance(value, str):
        blank = point.options is not None and value == point.options.get(0)
        informative = value.strip() and value.isprintable() and not blank
        return INFORMATIVE if informative else ANSWERED
    bounds = _plausible_range(point)
    if not math.isfinite(value) or (bounds is not None and not bounds[0] <= value <= bounds[1]):
        return IMPLAUSIBLE
    return INFORMATIVE if value else ANSWERED


def score_fit(
    point_map: PointMap,
    window: Mapping[tuple[RegisterSpace, int], int],
    points: Iterable[Point],
) -> MapFit:
    """Score ``point_map`` from the registers a probe read (``window``, by space and address).

    The score is the evidence earned over the evidence the points could give
    (:func:`point_evidence`), each ``identify`` pattern counting :data:`IDENTIFY_WEIGHT`.
    """
    earned = possible = 0.0
    informative = answered = probed = 0
    values: dict[str, Value] = {}
    for point in points:
        probed += 1
        possible += INFORMATIVE
        decoded = decode_point(point, point_map.device, window)
        if decoded is None:
            continue
        value, quality = decoded
        values[point.metric] = value
        evidence = point_evidence(point, value, quality)
        earned += evidence
        answered += 1
        informative += evidence == INFORMATIVE
    notes: list[str] = []
    identified: bool | None = None
    for metric, pattern in point_map.device.identify.items():
        possible += IDENTIFY_WEIGHT
        seen = values.get(metric)
        if seen is not None and re.search(pattern, str(seen)):
            earned += IDENTIFY_WEIGHT
            identified = identified is not False
        else:
            identified = False
            notes.append(f"{metric} is {seen!r}, not matching {pattern!r}")
    score = max(0.0, earned / possible) if possible else 0.0
    return MapFit(
        point_map.device.id, round(score, 3), informative, answered, probed, identified,
        tuple(notes),
    )  # fmt: skip


def _rank(fit: MapFit) -> tuple[bool, float, int]:
    """Maps whose ``identify`` fails rank last; then the best score; then the map that
    explains more registers (an SDM630 map over an SDM120 map on an SDM630)."""
    return (fit.identified is not False, fit.score, fit.informative)


def _says_present(error: DeviceError) -> bool:
    """Whether a failed request still shows a device at the unit id: it answered, if only
    to say the request was wrong or that it is busy."""
    if isinstance(error, DeviceExceptionError):
        return error.code in PRESENT_CODES
    return not isinstance(error, DeviceConnectionError)


def _describe(error: DeviceError) -> str:
    if isinstance(error, DeviceTimeoutError):
        return "no answer"
    if isinstance(error, DeviceExceptionError):
        return f"exception {error.code}"
    return str(error)


class Scanner:
    """Scans unit ids behind one Modbus endpoint, read only, at most ``rate`` requests a second.

    ``catalog`` holds the point maps to suggest from (:func:`edge_ems.pointmap.load_catalog`
    gives the bundled ones). ``clock`` and ``sleep`` pace the requests.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        catalog: Mapping[str, PointMap],
        *,
        rate: float = 10.0,
        timeout: float = 1.0,
        retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._catalog = dict(catalog)
        # A drop, a garbled answer or a busy device is tried again; silence means nobody.
        self._settings = LinkSettings(
            timeout=timeout, retries=retries, backoff_base=0.05, backoff_cap=0.5,
            retry_timeouts=False,
        )  # fmt: skip
        self._limiter = RateLimiter(rate, clock=clock, sleep=sleep)

    async def scan(self, units: Iterable[int]) -> ScanReport:
        """Scan ``units`` one after the other.

        Raises :class:`~edge_ems.exceptions.DeviceConnectionError` when the endpoint cannot
        be reached at all; later, a failed request is just an answer to note.
        """
        link = ModbusLink(self.endpoint, self._settings)
        modbus = ReadOnlyModbus(link, self._limiter)
        try:
            await link.connect()
            reports = [await self._scan_unit(modbus, unit) for unit in units]
        finally:
            await link.close()
        return ScanReport(self.endpoint.label, tuple(reports), modbus.requests)

    async def _scan_unit(self, modbus: ReadOnlyModbus, unit: int) -> UnitReport:
        cap = ReadCap()  # what this unit id takes, learned by whichever read meets it first
        answers: list[str] = []
        present = False
        sunspec: SunSpecFinding | None = None
        for base in BASE_ADDRESSES:
            try:
                words = await modbus.read(unit, RegisterSpace.HOLDING, base, 2)
            except DeviceError as err:
                answers.append(f"{base}: {_describe(err)}")
                present = present or _says_present(err)
                continue
            present = True
            answers.append(f"{base}: registers")
            if tuple(words) == MARKER:
                sunspec = await self._sunspec(ReadOnlyUnit(modbus, unit), base, cap)
                break
        answer = "; ".join(answers)
        if not present:
            return UnitReport(unit, False, answer)
        fits = [
            await self._probe(modbus, unit, point_map, cap) for point_map in self._catalog.values()
        ]
        useful = sorted(
            (fit for fit in fits if fit.informative and fit.score > 0), key=_rank, reverse=True
        )
        return UnitReport(unit, True, answer, sunspec, tuple(useful))

    async def _sunspec(self, registers: ReadOnlyUnit, base: int, cap: ReadCap) -> SunSpecFinding:
        try:
            chain, devices = await survey(registers, base, cap=cap)
        except DeviceError as err:
            return SunSpecFinding(base, (), (), str(err))  # a marker, but no chain to follow
        return SunSpecFinding(base, tuple(model.id for model in chain.models), devices)

    async def _probe(
        self, modbus: ReadOnlyModbus, unit: int, point_map: PointMap, cap: ReadCap
    ) -> MapFit:
        """Read the map's points as its device would be read, and score what answered.

        Every answer read lands in the window, so a probe cut short (its request budget
        spent, a block timed out) still counts what it got."""
        points = point_map.readable_points()
        window: dict[tuple[RegisterSpace, int], int] = {}
        spent = 0
        budget = PROBE_BUDGET

        async def read(space: RegisterSpace, address: int, count: int) -> list[int]:
            nonlocal spent
            if spent >= budget:
                raise _ProbeSpentError(point_map.device.id)
            spent += 1
            words = await modbus.read(unit, space, address, count)
            window.update(((space, address + i), word) for i, word in enumerate(words))
            return words

        reader = BlockReader(read, limits_of(point_map), cap=cap, refusals=CAP_REFUSAL)
        atoms = _atoms(points)
        blocks = reader.plan(atoms)
        budget += 2 * len(blocks)
        for block in blocks:
            part = [a for a in atoms[block.space] if block.address <= a[0] and a[1] <= block.end]
            try:
                await reader.read({block.space: part})
            except _ProbeSpentError:
                break
            except DeviceError:
                continue  # the map asks for registers this device does not serve
        return score_fit(point_map, window, points)


class _ProbeSpentError(DeviceError):
    """A probe spent its requests: enough evidence either way."""


def _atoms(points: Iterable[Point]) -> dict[RegisterSpace, list[Span]]:
    atoms: dict[RegisterSpace, list[Span]] = {}
    for point in points:
        atoms.setdefault(point.space, []).append((point.address, point.end))
        if point.scale_factor is not None:
            atoms[point.space].append((point.scale_factor, point.scale_factor))
    return atoms
