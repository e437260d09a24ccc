"""OpcUaDevice against the simulated BESS on a real asyncua server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import pytest

from edge_ems.device import Device, Health
from edge_ems.exceptions import (
    DeviceAuthenticationError,
    DeviceConnectionError,
    DeviceError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from edge_ems.opcua import NodeMap, OpcUaDevice, OpcUaSecurity, load_catalog, parse_node_map
from edge_ems.readings import Quality, Readings
from edge_ems.resilience import Backoff, CircuitBreaker
from edge_ems.sim.opcua_server import OpcUaBessSimulator, ServerSecurity

from ..bms.support import eventually, fast_clock, free_port
from .pki import CLIENT_URI, KeyPair

SIM_MAP = load_catalog()["sim_bess"]
READABLE = {metric for metric, point in SIM_MAP.points.items() if point.readable}


def device_for(
    simulator: OpcUaBessSimulator, node_map: NodeMap = SIM_MAP, **options: object
) -> OpcUaDevice:
    return OpcUaDevice(
        "bess",
        node_map,
        url=simulator.url,
        backoff=Backoff(base=0.05, cap=0.5),
        breaker=CircuitBreaker("bess", reset_timeout=0.2, max_reset_timeout=1.0),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def device(bess: OpcUaBessSimulator) -> AsyncIterator[OpcUaDevice]:
    subject = device_for(bess)
    yield subject
    await subject.close()


def complete(readings: Readings) -> bool:
    return set(readings) == READABLE


def number(readings: Readings, metric: str) -> float:
    value = readings[metric].value
    assert isinstance(value, int | float)
    return float(value)


async def health_of(device: OpcUaDevice) -> Health:
    return device.health


async def test_connects_identifies_and_reads_every_point(
    bess: OpcUaBessSimulator, device: OpcUaDevice
) -> None:
    assert isinstance(device, Device)
    identity = await device.connect()
    assert (identity.manufacturer, identity.model, identity.serial) == (
        "Edge EMS",
        "Simulated BESS",
        "SIM-BESS-0001",
    )
    readings = await eventually(device.read, complete)  # subscribed values arrive on their own
    assert all(reading.quality is Quality.GOOD for reading in readings.values())
    assert number(readings, "soc_pct") == pytest.approx(bess.battery.soc_pct, abs=0.1)
    assert number(readings, "battery_capacity_wh") == bess.battery.capacity_wh
    assert readings["device_serial"].value == "SIM-BESS-0001"
    assert device.health.connected
    assert device.commands["battery_power_setpoint_w"].allow_write
    # A lapsed lease hands the battery back by commanding no power; node maps name no watchdog.
    assert (device.safe_mode, device.revert_timer) == ({"battery_power_setpoint_w": 0}, None)


async def test_the_setpoint_takes_effect_and_state_of_charge_integrates(
    simulator: Callable[..., OpcUaBessSimulator],
) -> None:
    async with simulator(clock=fast_clock(3600.0)) as sim:
        device = device_for(sim)
        try:
            await device.connect()
            start = await eventually(device.read, complete)
            result = await device.write("battery_power_setpoint_w", -5000)
            assert (result.requested, result.written, result.read_back) == (-5000, -5000.0, -5000.0)
            charging = await eventually(
                device.read, lambda r: number(r, "battery_power_w") == -5000.0
            )
            assert number(charging, "battery_current_a") < 0
            await eventually(
                device.read, lambda r: number(r, "soc_pct") > number(start, "soc_pct") + 10
            )
        finally:
            await device.close()


LIMITED = parse_node_map(
    """
device: {maker: Edge EMS, model: Simulated BESS, kind: battery, documentation: test}
points:
  soc_pct: {node: "nsu=urn:edge-ems:sim:bess;s=BESS.Soc"}
  battery_power_setpoint_w:
    node: "nsu=urn:edge-ems:sim:bess;s=BESS.PowerSetpoint"
    access: rw
    write: {allow_write: true, min: -1000, max: 1000}
  soc_target_pct:
    node: "nsu=urn:edge-ems:sim:bess;s=BESS.PowerSetpoint"
    access: rw
    write: {allow_write: false}
""",
    source="limited.yaml",
    map_id="limited",
)


REFUSALS = [
    ("battery_charge_current_max_a", 10, "unknown_command"),
    ("soc_pct", 50, "not_writable"),
    ("soc_target_pct", 50, "not_allowed"),
    ("battery_power_setpoint_w", 1001, "out_of_range"),
    ("battery_power_setpoint_w", -1000.5, "out_of_range"),
    ("battery_power_setpoint_w", float("nan"), "out_of_range"),
    ("battery_power_setpoint_w", "full", "invalid_value"),
    ("battery_power_setpoint_w", None, "invalid_value"),
]


async def test_refused_writes_never_reach_the_server(bess: OpcUaBessSimulator) -> None:
    device = device_for(bess, LIMITED)
    try:
        await device.connect()
        for metric, value, reason in REFUSALS:
            with pytest.raises(WriteRefusedError) as caught:
                await device.write(metric, value)  # type: ignore[arg-type]
            assert caught.value.reason == reason, (metric, value)
            assert metric in str(caught.value)
        readings = await device.read()
        assert device.health.error_streak == 0  # refusals are not device faults
    finally:
        await device.close()
    assert readings["battery_power_setpoint_w"].value == 0.0


GENEROUS = parse_node_map(
    """
device: {maker: Edge EMS, model: Simulated BESS, kind: battery, documentation: test}
points:
  battery_power_setpoint_w:
    node: "nsu=urn:edge-ems:sim:bess;s=BESS.PowerSetpoint"
    access: rw
    write: {allow_write: true, min: -8000, max: 8000}
  soc_pct: {node: "nsu=urn:edge-ems:sim:bess;s=BESS.Soc", valid_range: [60, 100]}
  soh_pct: {node: "nsu=urn:edge-ems:sim:bess;s=BESS.NoSuchNode"}
""",
    source="generous.yaml",
    map_id="generous",
)


async def test_a_value_the_device_does_not_keep_is_a_read_back_mismatch(
    bess: OpcUaBessSimulator,
) -> None:
    device = device_for(bess, GENEROUS)  # allows more than the 5 kW the battery is rated for
    try:
        await device.connect()
        with pytest.raises(ReadBackMismatchError) as caught:
            await device.write("battery_power_setpoint_w", 6000)
        assert (caught.value.expected, caught.value.actual) == (6000.0, 5000.0)
        result = await device.write("battery_power_setpoint_w", 4000)
        assert result.read_back == 4000.0
    finally:
        await device.close()


async def test_bad_nodes_and_values_out_of_range_read_as_invalid(bess: OpcUaBessSimulator) -> None:
    device = device_for(bess, GENEROUS)
    try:
        await device.connect()
        readings = await device.read()
    finally:
        await device.close()
    assert (readings["soc_pct"].value, readings["soc_pct"].quality) == (50.0, Quality.INVALID)
    assert (readings["soh_pct"].value, readings["soh_pct"].quality) == (None, Quality.INVALID)
    assert readings["battery_power_setpoint_w"].quality is Quality.GOOD


async def test_reading_and_writing_while_closed_are_connection_errors(device: OpcUaDevice) -> None:
    with pytest.raises(DeviceConnectionError, match="not connected"):
        await device.read()
    with pytest.raises(DeviceConnectionError, match="not connected"):
        await device.write("battery_power_setpoint_w", 100)


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
async def test_secured_channel_with_client_certificate(
    simulator: Callable[..., OpcUaBessSimulator],
    server_keys: KeyPair,
    client_keys: KeyPair,
    mode: str,
) -> None:
    security = ServerSecurity(
        server_keys.certificate,
        server_keys.private_key,
        policies=("Basic256Sha256_SignAndEncrypt", "Basic256Sha256_Sign"),
    )
    async with simulator(security=security) as sim:
        secured = device_for(
            sim,
            security=OpcUaSecurity(client_keys.certificate, client_keys.private_key, mode=mode),
            application_uri=CLIENT_URI,
        )
        plain = device_for(sim)
        try:
            await secured.connect()
            readings = await eventually(secured.read, complete)
            with pytest.raises(DeviceError):
                await plain.connect()  # the server offers no unsecured endpoint
        finally:
            await secured.close()
            await plain.close()
    assert readings["device_serial"].value == "SIM-BESS-0001"


async def test_user_name_and_password(
    simulator: Callable[..., OpcUaBessSimulator], server_keys: KeyPair, client_keys: KeyPair
) -> None:
    security = ServerSecurity(server_keys.certificate, server_keys.private_key)
    users = {"operator": "s3cret"}
    async with simulator(security=security, users=users) as sim:
        keys = OpcUaSecurity(client_keys.certificate, client_keys.private_key)
        devices = {
            "right": device_for(
                sim, security=keys, application_uri=CLIENT_URI, username="operator",
                password="s3cret",
            ),
            "wrong": device_for(
                sim, security=keys, application_uri=CLIENT_URI, username="operator",
                password="guess",
            ),
            "anonymous": device_for(sim, security=keys, application_uri=CLIENT_URI),
        }  # fmt: skip
        try:
            await devices["right"].connect()
            await devices["right"].write("battery_power_setpoint_w", 500)
            for refused in ("wrong", "anonymous"):
                with pytest.raises(DeviceAuthenticationError):
                    await devices[refused].connect()
        finally:
            for each in devices.values():
                await each.close()


async def test_reconnects_and_resubscribes_after_a_server_restart(
    bess: OpcUaBessSimulator, device: OpcUaDevice
) -> None:
    await device.connect()
    await eventually(device.read, complete)
    await bess.stop()
    down = await eventually(lambda: health_of(device), lambda health: not health.connected)
    assert down.last_error
    with pytest.raises(DeviceError):  # not connected, or the breaker holds reads back
        await device.read()
    await bess.start()
    up = await eventually(lambda: health_of(device), lambda health: health.connected)
    assert up.last_seen is not None
    await device.write("battery_power_setpoint_w", 1200)  # the new subscription shows it
    readings = await eventually(device.read, lambda r: number(r, "battery_power_w") == 1200.0)
    assert readings["battery_power_w"].quality is Quality.GOOD


async def test_asyncua_says_nothing_of_a_connected_device_but_in_debug(
    bess: OpcUaBessSimulator, device: OpcUaDevice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await device.connect()  # asyncua warns that the session timeout was revised
    await eventually(device.read, complete)
    await bess.stop()  # a traceback from the publish loop, warnings on closing
    await eventually(lambda: health_of(device), lambda health: not health.connected)
    with pytest.raises(DeviceError):
        await device.read()
    await device.close()
    loud = [
        r
        for r in caplog.records
        if r.name.startswith("asyncua.client") and r.levelno >= logging.INFO
    ]
    assert loud == []
    moved = [r.getMessage() for r in caplog.records if r.name == "edge_ems.opcua.device"]
    assert any(line.startswith("asyncua.client") for line in moved)
    # A closed device's filter is gone: asyncua speaks again of what it does for others.
    for name in ("asyncua", "asyncua.client.client"):
        assert logging.getLogger(name).filters == []


async def test_an_unreachable_server_is_a_connection_error() -> None:
    device = OpcUaDevice("nowhere", SIM_MAP, url=f"opc.tcp://127.0.0.1:{free_port()}/", timeout=2.0)
    with pytest.raises(DeviceConnectionError):
        await device.connect()
    assert device.health.error_streak == 1
    await device.close()


async def test_a_missing_namespace_is_an_identification_error(bess: OpcUaBessSimulator) -> None:
    wrong = parse_node_map(
        """
device: {maker: x, model: y, kind: battery, documentation: z}
points:
  soc_pct: {node: "nsu=urn:not-there;s=BESS.Soc"}
""",
        source="wrong.yaml",
        map_id="wrong",
    )
    device = device_for(bess, wrong)
    with pytest.raises(IdentificationError, match="urn:not-there"):
        await device.connect()
    await device.close()
