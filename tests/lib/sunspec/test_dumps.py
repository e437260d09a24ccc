"""Discovery, identity and decoding on register images captured from real devices by others.

Each dump (see ``dumps/README.md``) is served by a real Modbus TCP server, refusing the
registers the device refused. Expected values are worked out from the dumps' hex words by
hand, in the comments, not by the code under test.
"""

from __future__ import annotations

import pytest
from modbus_connection import ModbusUnit

from edge_ems.device import DeviceIdentity
from edge_ems.modbus import LinkSettings, ModbusLink, TcpEndpoint
from edge_ems.readings import Quality
from edge_ems.sunspec import (
    LinkUnit,
    SunSpecDevice,
    decode_model,
    discover,
    model_definition,
    model_layout,
)
from edge_ems.sunspec.transport import MAX_READ

from .conftest import RegisterServer, load_dump

SMA = "sma_sunnyboy36_20250410.txt"
FIMER = "fimer_pvs_20240722.txt"
SOLAREDGE = "solaredge_20191001.txt"


async def connected(server: RegisterServer, unit: ModbusUnit, dump: str) -> SunSpecDevice:
    server.registers = load_dump(dump)
    device = SunSpecDevice(unit, name=dump)
    await device.connect()
    return device


@pytest.mark.parametrize(
    ("dump", "identity"),
    [
        (SMA, DeviceIdentity("SMA", "SB3.6-1AV-41", "3005067415", "4.01.15.R")),
        (FIMER, DeviceIdentity("FIMER", "-3Q58-", "118747-3Q58-4221", "2330F")),
        (SOLAREDGE, DeviceIdentity("SolarEdge", "SE3000H-RW000BNN4", "731A2B70", "0004.0006.0024")),
    ],
)
async def test_identity_from_the_common_model(
    server: RegisterServer, unit: ModbusUnit, dump: str, identity: DeviceIdentity
) -> None:
    device = await connected(server, unit, dump)
    assert device.identity == identity
    readings = await device.read()
    assert readings["device_serial"].value == identity.serial
    assert readings["device_firmware"].value == identity.firmware


async def test_chains_walk_to_the_end_marker(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = load_dump(FIMER)
    chain = await discover(unit)
    assert chain.base == 40000
    assert [(m.id, m.address, m.length) for m in chain.models[:3]] == [
        (1, 40002, 66), (103, 40070, 50), (120, 40122, 26),
    ]  # fmt: skip
    # Vendor models after 160 are walked over like any other.
    assert [m.id for m in chain.models[-3:]] == [160, 65230, 65232]
    assert chain.models[-1].end == 41378  # the end marker follows at 41379


async def test_sma_inverter_at_night(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, SMA)
    readings = await device.read()
    # 101.WH 0x002CFB4A = 2947914, WH_SF 0x0001: 29479140 Wh.
    assert readings["ac_energy_out_wh"].value == 29_479_140
    # 101.W 0x8000 and St 0xFFFF: not implemented at night.
    assert readings["ac_power_w"].value is None
    assert readings["inverter_state"].value is None
    # 120.WRtg 0x0170 = 368, WRtg_SF 1: the 3.68 kW the model name says.
    assert readings["rated_power_w"].value == 3680
    # 123.WMaxLim_Ena 0x0001; WMaxLimPct 0 at WMaxLimPct_SF 0xFFFE.
    assert readings["active_power_limit_enabled"].value is True
    assert readings["active_power_limit_pct"].value == 0
    # 160.DCW 0xFFFF in every module.
    assert readings["pv1_power_w"].value is None
    assert all(reading.quality is Quality.GOOD for reading in readings.values())


async def test_sma_refused_registers_are_learned_once(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    device = await connected(server, unit, SMA)
    # Model 160: each module's ID, IDStr, Tms and DCEvt touch refused registers.
    assert len(device.reader.refused) == 6 * 4
    server.requests.clear()
    await device.read()
    assert server.reads, "read() reads"
    assert all(server.serves(address, count) for address, count in server.reads)


def test_sma_models_decode_with_signed_scale_factors() -> None:
    registers = load_dump(SMA)
    nameplate = model_layout(model_definition(120), 40237, 26)
    values = decode_model(nameplate, registers).values
    # ARtg 0x00A0 = 160 at ARtg_SF 0xFFFF (-1); VArRtgQ2 0x8000 not implemented.
    assert values["ARtg"] == 16.0
    assert values["VArRtgQ2"] is None
    assert values["DERTyp"] == 4  # PV
    mppt = model_layout(model_definition(160), 40621, 128)
    decoded = decode_model(mppt, registers)
    assert decoded.values["N"] == 6
    assert len(decoded.groups["module"]) == 6
    # IDStr refused: absent from the registers, so None.
    assert decoded.groups["module"][0].values["IDStr"] is None


async def test_fimer_three_phase_inverter(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, FIMER)
    readings = {metric: reading.value for metric, reading in (await device.read()).items()}
    assert (
        readings
        | {
            # 103.W 0x373A = 14138 at W_SF 1.
            "ac_power_w": 141_380,
            # A 0x0C81 = 3201, AphA 0x042B = 1067 at A_SF 0xFFFF.
            "ac_current_a": 320.1,
            "ac_current_l1_a": 106.7,
            # PPVphAB 0x1DE8 = 7656, PhVphA 0x1147 = 4423 at V_SF 0xFFFF.
            "ac_voltage_l1_l2_v": 765.6,
            "ac_voltage_l1_v": 442.3,
            # Hz 0x1387 = 4999 at 0xFFFE.
            "ac_frequency_hz": 49.99,
            # PF 0xD8F0 = -10000 at PF_SF 0xFFFC (-4): a fraction already, not percent.
            "ac_power_factor": -1.0,
            # WH 0x02BD2174 = 45949300 at WH_SF 1.
            "ac_energy_out_wh": 459_493_000,
            # DCA 0x0609 = 1545 at 0xFFFF; DCW 0x3869 = 14441 at 1; DCV 0xFFFF not implemented.
            "dc_current_a": 154.5,
            "pv_power_w": 144_410,
            "dc_voltage_v": None,
            # TmpCab 0x0217 = 535, TmpSnk 0x0302 = 770 at Tmp_SF 0xFFFF.
            "device_temperature_c": 53.5,
            "heatsink_temperature_c": 77.0,
            "inverter_state": "mppt",  # St 4
            # 120.WRtg 0x4844 = 18500 at 1.
            "rated_power_w": 185_000,
            # 160 module 1: DCA 0x0080, DCV 0x2553 at 0xFFFF; DCW 0x04CA at 1.
            "pv1_current_a": 12.8,
            "pv1_voltage_v": 955.5,
            "pv1_power_w": 12_260,
            # 123: WMaxLimPct 0x03E8 at 0xFFFF, WMaxLim_Ena 0, WMaxLimPct_RvrtTms 0x003C.
            "active_power_limit_pct": 100.0,
            "active_power_limit_enabled": False,
            "control_revert_timeout_s": 60,
        }
        == readings
    )


async def test_fimer_reads_with_the_fewest_requests(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    device = await connected(server, unit, FIMER)
    server.requests.clear()
    await device.read()
    # 103+120 (80 registers, 121 and 122 unused), 123 (26), and 160's 250 registers: no
    # 125-register cut falls between points there (Tms spans 41228-41229, DCEvt
    # 41352-41353), so 124 + 124 + 2.
    assert server.reads == [(40070, 80), (40228, 26), (41104, 124), (41228, 124), (41352, 2)]
    assert max(count for _, count in server.reads) <= MAX_READ


def test_fimer_settings_with_negative_values() -> None:
    registers = load_dump(FIMER)
    settings = decode_model(model_layout(model_definition(121), 40150, 30), registers).values
    # WMax 0x4844 at WMax_SF 1; VArMaxQ3 0xBBA4 = -17500 at VArMax_SF 1; VRef_SF 0x8000.
    assert settings["WMax"] == 185_000
    assert settings["VArMaxQ3"] == -175_000
    assert settings["VRef"] is None
    status = decode_model(model_layout(model_definition(122), 40182, 44), registers).values
    # ActWh, acc64 0x000000001B5E3DA0, no scale factor.
    assert status["ActWh"] == 0x1B5E3DA0
    assert status["PVConn"] == 1


async def test_solaredge_single_phase_inverter(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, SOLAREDGE)
    readings = {metric: reading.value for metric, reading in (await device.read()).items()}
    assert (
        readings
        | {
            "ac_current_a": 2.2,  # 0x00DC at 0xFFFE
            "ac_voltage_l1_l2_v": 240.7,  # PPVphAB 0x0967 at 0xFFFF
            "ac_voltage_l1_v": None,  # PhVphA 0xFFFF
            "ac_power_w": 509.2,  # 0x13E4 at 0xFFFF
            "ac_frequency_hz": 50.006,  # 0xC356 at 0xFFFD
            "ac_apparent_power_va": 531.3,  # 0x14C1 at 0xFFFF
            "ac_reactive_power_var": 151.74,  # 0x3B46 at 0xFFFE
            "ac_power_factor": 0.9583,  # 0x256F = 9583 at 0xFFFE: 95.83 %
            "ac_energy_out_wh": 17_679,  # 0x0000450F at 0
            "dc_current_a": 1.3477,  # 0x34A5 at 0xFFFC
            "dc_voltage_v": 383.6,  # 0x0EFC at 0xFFFF
            "pv_power_w": 517.0,  # 0x1432 at 0xFFFF
            "heatsink_temperature_c": 38.14,  # 0x0EE6 at 0xFFFE
            "inverter_state": "mppt",
        }
        == readings
    )
    # No controls in this map: nothing is writable.
    assert device.commands == {}
    assert device.revert_timer is None
    assert device.safe_mode == {}


def test_an_old_common_model_without_its_pad() -> None:
    """SolarEdge's common model is 65 registers, the revision before Pad was added."""
    registers = load_dump(SOLAREDGE)
    common = decode_model(model_layout(model_definition(1), 40002, 65), registers).values
    assert common["DA"] == 1
    assert "Pad" not in common


@pytest.mark.parametrize("base", [0, 50000])
async def test_maps_at_the_other_base_addresses(
    server: RegisterServer, unit: ModbusUnit, base: int
) -> None:
    # The SolarEdge map, moved: discovery must find it wherever SunSpec allows.
    server.registers = {
        address - 40000 + base: word for address, word in load_dump(SOLAREDGE).items()
    }
    device = SunSpecDevice(unit)
    identity = await device.connect()
    assert identity.serial == "731A2B70"
    assert device.chain is not None
    assert device.chain.base == base
    assert (await device.read())["ac_power_w"].value == 509.2


async def test_writing_a_real_control_image(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, FIMER)
    result = await device.write("active_power_limit_pct", 50)
    # WMaxLimPct at 40233 (123 at 40228, offset 5), WMaxLimPct_SF -1: raw 500.
    assert server.registers[40233] == 500
    assert (result.written, result.read_back) == (50.0, 50.0)
    await device.write("control_revert_timeout_s", 120)
    assert server.registers[40235] == 120  # WMaxLimPct_RvrtTms


async def test_over_a_shared_modbus_link(server: RegisterServer) -> None:
    """The same device over an ``edge_ems.modbus`` link instead of a bare unit."""
    server.registers = load_dump(SMA)
    link = ModbusLink(TcpEndpoint("127.0.0.1", server.port), LinkSettings(timeout=5))
    try:
        device = SunSpecDevice(LinkUnit(link, 1, name="sma"))
        assert (await device.connect()).model == "SB3.6-1AV-41"
        assert len(device.reader.refused) == 6 * 4  # refusals come through the link too
        assert (await device.read())["rated_power_w"].value == 3680
        result = await device.write("active_power_limit_enabled", False)
        assert result.read_back is False
    finally:
        await link.close()
