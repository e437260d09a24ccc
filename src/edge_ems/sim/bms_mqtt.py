"""A simulated MQTT battery bridge: a :class:`~edge_ems.sim.physics.Battery` published by a map.

It publishes what a real bridge would (ESPHome JK-BMS, Venus OS, batmon-ha: any bundled topic
map) every ``interval`` seconds, and reconnects with backoff when the broker goes away. The
battery's state of charge integrates whatever power it is commanded (``sim.battery.command``).
``clock`` gives simulated time; pass a faster clock to replay hours in seconds::

    async with MqttBmsSimulator(load_catalog()["esphome_jk_bms"], host="127.0.0.1") as sim:
        sim.battery.command(-2000.0)  # charge at 2 kW
        ...
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

import aiomqtt

from ..bms.decoder import TopicMapDecoder
from ..bms.mqtt_device import connected
from ..bms.topicmap import TopicMap
from ..readings import Value
from ..resilience import Backoff
from .physics import Battery

_LOGGER = logging.getLogger(__name__)

_CELL_NOMINAL_V = 3.2  # LiFePO4, what home batteries use
_CELL_CHARGE_V = 3.55
_CELL_CUTOFF_V = 2.9
_REQUEST_CHARGE = 0x80  # bms_requests bits, as the Pylontech protocol numbers them
_REQUEST_DISCHARGE = 0x40


def bms_values(battery: Battery) -> dict[str, Value]:
    """What a battery management system reports about ``battery``, by metric."""
    nominal_v = battery.nominal_voltage_v
    cells = max(1, round(nominal_v / _CELL_NOMINAL_V))
    cell_v = battery.voltage_v / cells
    requests = (_REQUEST_CHARGE if battery.soc_pct < battery.soc_max_pct else 0) | (
        _REQUEST_DISCHARGE if battery.soc_pct > battery.soc_min_pct else 0
    )
    return {
        "soc_pct": round(battery.soc_pct, 1),
        "soh_pct": 100,
        "battery_voltage_v": battery.voltage_v,
        "battery_current_a": battery.current_a,
        "battery_power_w": round(battery.power_w, 1),
        "battery_temperature_c": round(battery.temperature_c, 1),
        "device_temperature_c": round(battery.temperature_c + 3.0, 1),
        "cell_voltage_min_v": round(cell_v - 0.004, 3),
        "cell_voltage_max_v": round(cell_v + 0.004, 3),
        "cell_temperature_min_c": round(battery.temperature_c - 0.5, 1),
        "cell_temperature_max_c": round(battery.temperature_c + 0.5, 1),
        "battery_capacity_ah": round(battery.capacity_wh / nominal_v),
        "battery_capacity_wh": battery.capacity_wh,
        "battery_charge_energy_wh": round(battery.charge_energy_wh, 1),
        "battery_discharge_energy_wh": round(battery.discharge_energy_wh, 1),
        "battery_charge_voltage_limit_v": round(_CELL_CHARGE_V * cells, 1),
        "battery_discharge_voltage_limit_v": round(_CELL_CUTOFF_V * cells, 1),
        "battery_charge_current_limit_a": round(
            battery.max_charge_w / battery.nominal_voltage_v, 1
        ),
        "battery_discharge_current_limit_a": round(
            battery.max_discharge_w / battery.nominal_voltage_v, 1
        ),
        "battery_module_count": 1,
        "bms_alarms": battery.alarms,
        "bms_warnings": 0,
        "bms_requests": requests,
    }


class MqttBmsSimulator:
    """Publishes a simulated battery the way the bridge of ``topic_map`` does.

    ``variables`` fill the map's topic placeholders and must leave no ``+`` behind (the
    simulator publishes to concrete topics).
    """

    def __init__(
        self,
        topic_map: TopicMap,
        *,
        host: str,
        port: int = 1883,
        variables: Mapping[str, str] | None = None,
        battery: Battery | None = None,
        interval: float = 1.0,
        username: str | None = None,
        password: str | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.decoder = TopicMapDecoder(topic_map, variables)
        self.battery = battery or Battery()
        self.published = 0
        """Messages published so far."""
        self._host, self._port = host, port
        self._username, self._password = username, password
        self._interval = interval
        self._backoff = backoff or Backoff(base=0.5, cap=10.0)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start publishing (in the background, reconnecting as needed)."""
        self.decoder.encode(bms_values(self.battery))  # variables left as "+" fail here
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="edge-ems sim mqtt bms")

    async def stop(self) -> None:
        """Stop publishing and disconnect."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self._publish_forever()
            except aiomqtt.MqttError as err:
                _LOGGER.debug("simulated MQTT BMS: broker link lost: %s", err)
            await asyncio.sleep(self._backoff.delay())

    async def _publish_forever(self) -> None:
        async with connected(
            aiomqtt.Client(
                self._host,
                self._port,
                username=self._username,
                password=self._password,
                logger=_LOGGER,
            )
        ) as client:
            self._backoff.reset()
            while True:
                self.battery.advance(self._clock())
                for topic, payload in self.decoder.encode(bms_values(self.battery)):
                    await client.publish(topic, payload)
                    self.published += 1
                await asyncio.sleep(self._interval)
