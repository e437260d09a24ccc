"""Run EMHASS's optimiser on ``planner-bench-scenario/1`` files; run by ``bench/planner.py``
with the Python of the bench-only EMHASS venv (it imports EMHASS, not Edge EMS).

Reads a JSON list of scenario paths on stdin and prints one JSON line per scenario: the
schedule EMHASS found, its status and the time of ``Optimization.perform_optimization``.
Each scenario is solved twice on one ``Optimization`` object: the first call builds the
cvxpy problem, the second (``warm_ms``) finds it cached, as EMHASS's MPC loop does; the
second is the time the benchmark compares with, the one most favourable to EMHASS.

The configuration is EMHASS's own defaults (``config_defaults.json`` through its
``build_config``/``build_params``), with the scenario's plant and policy written over them:
``costfun: profit``, HiGHS through cvxpy with its default 1 % MIP gap, battery SOC target
at the end equal to the scenario's ``soc_final``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import sys
import time
from typing import Any

import numpy as np
import orjson
import pandas as pd
from emhass import utils
from emhass.optimization import Optimization

ROOT = pathlib.Path(utils.__file__).parent
CONF = {
    "data_path": pathlib.Path("/tmp"),
    "root_path": ROOT,
    "defaults_path": ROOT / "data" / "config_defaults.json",
    "associations_path": ROOT / "data" / "associations.csv",
}
LOGGER = logging.getLogger("emhass-bench")
LOGGER.addHandler(logging.NullHandler())
LOGGER.propagate = False


async def base_params() -> dict[str, Any]:
    config = await utils.build_config(CONF, LOGGER, CONF["defaults_path"])
    _, secrets = await utils.build_secrets(CONF, LOGGER, no_response=True)
    return await utils.build_params(CONF, secrets, config, LOGGER)


def configure(params: dict[str, Any], scenario: dict[str, Any]) -> tuple[dict, dict, dict]:
    params = json.loads(json.dumps(params, default=str))
    n, step = scenario["n_steps"], scenario["step_minutes"]
    battery = scenario["battery"]
    loads = scenario["deferrable_loads"]
    policy = scenario["policy"]
    params["retrieve_hass_conf"].update(
        {"optimization_time_step": step, "time_zone": scenario["time_zone"]}
    )
    params["optim_conf"].update(
        {
            "costfun": "profit",
            "set_use_battery": True,
            "set_use_pv": True,
            "number_of_deferrable_loads": len(loads),
            "nominal_power_of_deferrable_loads": [d["power_w"] for d in loads],
            "minimum_power_of_deferrable_loads": [0.0] * len(loads),
            "operating_hours_of_each_deferrable_load": [d["duration_hours"] for d in loads],
            "start_timesteps_of_each_deferrable_load": [d["earliest_start_step"] for d in loads],
            "end_timesteps_of_each_deferrable_load": [d["latest_end_step"] for d in loads],
            "treat_deferrable_load_as_semi_cont": [d["on_off"] for d in loads],
            "set_deferrable_load_single_constant": [d["single_block"] for d in loads],
            "set_deferrable_startup_penalty": [0.0] * len(loads),
            "cost_forecast_per_deferrable_load": [None] * len(loads),
            "is_electric_load": [True] * len(loads),
            "def_minimum_on_time": [0] * len(loads),
            "def_minimum_off_time": [0] * len(loads),
            "deferrable_load_max_cost": [0.0] * len(loads),
            "set_deferrable_max_startups": [0] * len(loads),
            "set_nocharge_from_grid": not policy["battery_grid_charge_allowed"],
            "set_nodischarge_to_grid": not policy["battery_export_allowed"],
            "set_total_pv_sell": False,
            "delta_forecast_daily": n * step / 1440,
            "num_threads": 1,
        }
    )
    params["plant_conf"].update(
        {
            "maximum_power_from_grid": scenario["grid"]["import_max_w"],
            "maximum_power_to_grid": scenario["grid"]["export_max_w"],
            "battery_charge_power_max": battery["charge_power_max_w"],
            "battery_discharge_power_max": battery["discharge_power_max_w"],
            "battery_charge_efficiency": battery["charge_efficiency"],
            "battery_discharge_efficiency": battery["discharge_efficiency"],
            "battery_nominal_energy_capacity": battery["capacity_wh"],
            "battery_minimum_state_of_charge": battery["soc_min"],
            "battery_maximum_state_of_charge": battery["soc_max"],
            "battery_target_state_of_charge": battery["soc_final"],
            "inverter_is_hybrid": False,
            "compute_curtailment": policy["pv_curtailment_allowed"],
        }
    )
    return utils.get_yaml_parse(orjson.dumps(params).decode(), LOGGER)


def run(params: dict[str, Any], path: str) -> dict[str, Any]:
    scenario = json.loads(pathlib.Path(path).read_text())
    retrieve, optim, plant = configure(params, scenario)
    index = pd.DatetimeIndex(pd.to_datetime(scenario["timestamps"], utc=True)).tz_convert(
        scenario["time_zone"]
    )
    data = pd.DataFrame(
        {
            "unit_load_cost": scenario["import_price_per_kwh"],
            "unit_prod_price": scenario["export_price_per_kwh"],
        },
        index=index,
    )
    pv = np.asarray(scenario["pv_w"], dtype=float)
    load = np.asarray(scenario["load_w"], dtype=float)
    battery = scenario["battery"]
    optimization = Optimization(
        retrieve, optim, plant, "unit_load_cost", "unit_prod_price", "profit", CONF, LOGGER,
        num_timesteps=scenario["n_steps"],
    )  # fmt: skip
    times = []
    result = None
    for _ in range(2):
        began = time.perf_counter()
        result = optimization.perform_optimization(
            data, pv, load, data["unit_load_cost"].values, data["unit_prod_price"].values,
            soc_init=battery["soc_initial"], soc_final=battery["soc_final"],
        )  # fmt: skip
        times.append((time.perf_counter() - began) * 1000.0)
    assert result is not None
    battery_power = result["P_batt"].to_numpy(dtype=float)
    return {
        "path": path,
        "status": str(optimization.optim_status),
        "cold_ms": times[0],
        "warm_ms": times[1],
        "grid_import_w": result["P_grid_pos"].to_numpy(dtype=float).tolist(),
        "grid_export_w": (-result["P_grid_neg"].to_numpy(dtype=float)).tolist(),
        "battery_charge_w": np.maximum(-battery_power, 0).tolist(),
        "battery_discharge_w": np.maximum(battery_power, 0).tolist(),
        "deferrable_w": [
            result[f"P_deferrable{k}"].to_numpy(dtype=float).tolist()
            for k in range(len(scenario["deferrable_loads"]))
        ],
    }


def main() -> None:
    paths = json.loads(sys.stdin.read())
    params = asyncio.run(base_params())
    for path in paths:
        try:
            line = run(params, path)
        except Exception as err:  # one bad solve must not end the comparison
            line = {"path": path, "status": "error", "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
