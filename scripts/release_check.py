"""``make release-check``: the release built and installed as a user's Home Assistant and the
app's image would, as far as this machine allows (no Docker engine, no GitHub).

1. The sdist and wheel are built from a clean tree (``git archive`` of HEAD: nothing
   uncommitted, nothing ignored), the wheel from the sdist; ``twine check``; LICENSE in both,
   and every file of the package in the wheel; ``scripts/release.py`` checks the clean
   tree's versions agree.
2. A fresh venv gets the newest Home Assistant release from PyPI (or ``--ha-version``). The
   integration is copied (not linked) out of the HACS zip into a fresh configuration folder,
   and ``hass`` starts *without* ``--skip-pip``: Home Assistant installs the manifest's
   ``edge-ems==<version>`` itself, with uv under its own ``package_constraints.txt``, finding
   the wheel through ``UV_FIND_LINKS`` (PyPI does not have it yet).
3. Over Home Assistant's REST API: onboarding, a site and one simulated device (a Deye hybrid
   behind a Modbus TCP gateway) through the config flow; its entities must come alive. A
   device at a port where nothing answers is refused by its flow (``cannot_connect``), and the
   simulated device taken down makes its entities unavailable.
4. The app's root filesystem as far as it goes without Docker: ``edge-ems[hub]`` of this
   version installs ``--only-binary`` for the base image's Python on musllinux x86_64 and
   aarch64, and the s6-overlay scripts pass shellcheck.

It prints the wheel's name, the Home Assistant version it ran against and the entities it
saw, and exits 1 on the first failure. Needs PyPI; takes several minutes (pip's cache helps).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from edge_ems.cli.sim import SERVER_LOGGERS, quiet_libraries
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite, free_port

from .hass_demo.hass_api import Answer, HomeAssistantApi
from .hass_demo.processes import DOMAIN, DemoError, HomeAssistantProcess
from .hass_demo.site import SITE_STEPS, live_entities, summary

REPO = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{}/json"
LOOPBACK = "127.0.0.1"
SITE = SiteConfig(
    sunspec=None, bess=None, mqtt_bms=None, can_bms=False, ev_charger=None, heat_pump=None,
    battery_inverter=None,
)  # fmt: skip
"""The Modbus TCP gateway alone (a Deye hybrid and an SDM630 behind it)."""
DOWN_TIMEOUT = 120.0
"""A device's coordinator polls every 10 s and gives up after its retries."""
MUSLLINUX = {
    "x86_64": ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64"],
    "aarch64": ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64"],
}
"""The app's base image is Alpine (musl) for amd64 and aarch64."""
S6 = Path("etc/s6-overlay")
UNSET = ("unavailable", "unknown")


class CheckError(Exception):
    """The release is not installable as it should be; the message says why."""


def say(text: str) -> None:
    print(text, flush=True)


def run(*command: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run a command; its output, or a :class:`CheckError` with the end of it."""
    done = subprocess.run(  # noqa: S603 - our own commands, no shell
        [str(part) for part in command], cwd=cwd, env=None if env is None else dict(env),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise CheckError(f"{' '.join(map(str, command[:4]))} ... failed:\n{tail}")
    return done.stdout


def clean_tree(folder: Path, source: Path | None) -> Path:
    """HEAD's tree, unpacked into ``folder``: from ``source`` (a ``git archive`` tarball the
    Makefile makes on the host, where a worktree's git works) or made here."""
    tree = folder / "tree"
    tree.mkdir()
    if source is None:
        archive = folder / "tree.tar"
        run("git", "-C", REPO, "archive", "--format=tar", "-o", archive, "HEAD")
        source = archive
    with tarfile.open(source) as tar:
        tar.extractall(tree, filter="data")
    return tree


def build(tree: Path, dist: Path) -> tuple[Path, Path]:
    """sdist, then the wheel from the sdist; both checked."""
    run(sys.executable, "-m", "build", "--outdir", dist, tree)
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    with tarfile.open(sdist) as tar:
        if f"{sdist.name.removesuffix('.tar.gz')}/LICENSE" not in tar.getnames():
            raise CheckError(f"{sdist.name} has no LICENSE")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        raise CheckError(f"{wheel.name} has no LICENSE")
    # Every file of the package, its data (point maps, topic and node maps) included.
    package = tree / "src"
    wanted = {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()}
    if missing := sorted(wanted - set(names)):
        raise CheckError(f"{wheel.name} lacks {len(missing)} files of the package: {missing[:5]}")
    return sdist, wheel


def newest_release(package: str) -> str:
    """The newest release on PyPI (pre-releases aside, as PyPI's ``info.version`` has it)."""
    with urllib.request.urlopen(PYPI.format(package), timeout=60) as response:  # noqa: S310
        version: str = json.load(response)["info"]["version"]
    return version


def fresh_venv(folder: Path, ha_version: str) -> Path:
    """A venv with Home Assistant ``ha_version`` and nothing of ours; its ``bin``."""
    run("python3.14", "-m", "venv", folder)
    pip = folder / "bin" / "pip"
    run(pip, "install", "--quiet", "--upgrade", "pip")
    run(pip, "install", "--quiet", f"homeassistant=={ha_version}")
    return folder / "bin"


def installed(bin_dir: Path, package: str) -> tuple[str, str] | None:
    """Version and location of ``package`` in the venv, if installed."""
    done = subprocess.run(  # noqa: S603
        [str(bin_dir / "pip"), "show", package], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    fields = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    return fields["Version"], fields["Location"]


def hass_env(bin_dir: Path, dist: Path) -> dict[str, str]:
    """``hass``'s environment: nothing of this checkout on its path (scripts/in-env puts our
    ``src`` first), the venv's tools first, and the wheel where uv looks for links."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env["UV_FIND_LINKS"] = str(dist)
    # uv trusts its own bundled roots unless told otherwise; where PyPI is reached through a
    # proxy with its own CA (as on this project's machines), the system's store has that CA.
    env["UV_SYSTEM_CERTS"] = env["UV_NATIVE_TLS"] = "1"
    return env


async def flow_error(api: HomeAssistantApi, entry_id: str, port: int) -> str:
    """Add a device where nothing answers: the error the flow shows, and the flow dropped."""
    index = "/api/config/config_entries/subentries/flow"
    form = await api.request("POST", index, {"handler": [entry_id, "modbus"]})
    form = await api.request(
        "POST", f"{index}/{form['flow_id']}", {"point_map": "eastron_sdm630", "transport": "tcp"}
    )
    form = await api.request(
        "POST", f"{index}/{form['flow_id']}", {"host": LOOPBACK, "port": port, "unit_id": 1}
    )
    await api.request("DELETE", f"{index}/{form['flow_id']}")
    errors: dict[str, str] = form.get("errors") or {}
    if form.get("type") != "form" or "base" not in errors:
        raise CheckError(f"a device that does not answer was not refused: {form}")
    texts = await api.websocket({
        "type": "frontend/get_translations", "language": "en",
        "category": "config_subentries", "integration": [DOMAIN],
    })  # fmt: skip
    key = f"component.{DOMAIN}.config_subentries.modbus.error.{errors['base']}"
    text = texts["resources"].get(key)
    if not text:
        raise CheckError(f"the flow's error {errors['base']} has no English text")
    return f"{errors['base']} ({text})"


OUTAGE = re.compile(r"\[custom_components\.edge_ems\.coordinator\] Error fetching .* data: ")
"""Home Assistant's coordinator logs a device that stops answering once, at error level."""


def our_errors(log: str) -> list[str]:
    """The errors Home Assistant logged for the integration or its library."""
    return [
        line
        for line in log.splitlines()
        if " ERROR " in line and re.search(r"\[(custom_components\.)?edge_ems[.\]]", line)
    ]


async def until_unavailable(api: HomeAssistantApi, entity_ids: list[str]) -> int:
    """Until the entities that were live are unavailable; how many."""
    deadline = time.monotonic() + DOWN_TIMEOUT
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        states = await api.states(DOMAIN)
        if all(states[e]["state"] == "unavailable" for e in entity_ids if e in states):
            return len(entity_ids)
        await asyncio.sleep(2.0)
    left = [e for e in entity_ids if states.get(e, {}).get("state") != "unavailable"]
    raise CheckError(f"{len(left)} entities stayed available after the device went down: "
                     f"{left[:5]}")  # fmt: skip


async def home_assistant_check(
    folder: Path, bin_dir: Path, dist: Path, integration: Path, version: str
) -> None:
    """A real ``hass`` from the venv with the integration copied in; a site and a device."""
    port = free_port(LOOPBACK)
    hass = HomeAssistantProcess(
        folder / "config", LOOPBACK, port, hass=str(bin_dir / "hass"), integration=integration,
        copy=True, env=hass_env(bin_dir, dist), skip_pip=False,
    )  # fmt: skip
    site = SimulatedSite(SITE)
    await site.start()
    try:
        await asyncio.to_thread(hass.prepare)
        await hass.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            api = HomeAssistantApi(session, hass.url)
            await api.wait_until_up(hass)
            await api.onboard()
            flow = "/api/config/config_entries"
            entry = await api.run_flow(f"{flow}/flow", {"handler": DOMAIN}, SITE_STEPS)
            entry_id = entry["result"]["entry_id"]
            if (found := installed(bin_dir, "edge-ems")) is None:
                log = await asyncio.to_thread(hass.log_tail)
                raise CheckError(f"Home Assistant did not install edge-ems:\n{log}")
            if found[0] != version or not found[1].startswith(str(bin_dir.parent)):
                raise CheckError(f"edge-ems {found[0]} at {found[1]}, not {version} in the venv")
            say(f"Home Assistant installed edge-ems {found[0]} (requirement edge-ems=={version}, "
                "uv, its package_constraints.txt)")  # fmt: skip
            endpoints = site.endpoints
            deye: dict[str, Answer] = {
                "user": {"point_map": "deye_sun_sg_hybrid", "transport": "tcp"},
                "network": {
                    "host": endpoints.host, "port": endpoints.modbus_gateway_port,
                    "unit_id": endpoints.deye_unit,
                },
            }  # fmt: skip
            created = await api.run_flow(
                f"{flow}/subentries/flow", {"handler": [entry_id, "modbus"]}, deye
            )
            say(f"site {entry['title']!r} and device {created['title']!r} added through the "
                "config flow")  # fmt: skip
            await api.request("POST", f"{flow}/entry/{entry_id}/reload")
            await api.wait_loaded(entry_id)
            states = await live_entities(api)
            live = sorted(e for e, s in states.items() if s["state"] not in UNSET)
            shown = summary(states, limit=1000)
            say(f"entities: {len(states)}, {len(live)} with a value:\n{shown}")
            refused = await flow_error(api, entry_id, free_port(LOOPBACK))
            say(f"a device where nothing answers: the flow shows {refused}")
            if errors := our_errors(await asyncio.to_thread(hass.log_text)):
                raise CheckError("Home Assistant logged errors of ours:\n" + "\n".join(errors))
            await site.stop()
            down = await until_unavailable(api, live)
            outage = our_errors(await asyncio.to_thread(hass.log_text))
            if len(outage) != 1 or not OUTAGE.search(outage[0]):
                raise CheckError("the outage was not logged once:\n" + "\n".join(outage))
            say(f"device down: its {down} live entities turned unavailable, one log line: "
                f"{outage[0].split('] ', 1)[-1]}")  # fmt: skip
    except (DemoError, CheckError) as err:
        log = await asyncio.to_thread(hass.log_tail, 40)
        raise CheckError(f"{err}\n--- the end of Home Assistant's log:\n{log}") from None
    finally:
        await hass.stop()
        await site.stop()


def base_python(tree: Path) -> str:
    """The Python version of the app's base image, from its Dockerfile's pinned tag."""
    text = (tree / "addon" / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^FROM ghcr\.io/home-assistant/base-python:(3\.\d+)-alpine", text, re.M)
    if match is None:
        raise CheckError("addon/Dockerfile: no base-python image")
    return match.group(1)


def app_rootfs(folder: Path, tree: Path, dist: Path, version: str) -> None:
    """The app's image as far as it goes here: its pip install, binary only, for each of its
    platforms into a rootfs of its own, and its s6-overlay scripts, checked."""
    python = base_python(tree)
    abi = "cp" + python.replace(".", "")
    for arch, platforms in MUSLLINUX.items():
        rootfs = folder / f"rootfs-{arch}"
        site_packages = rootfs / "usr/local/lib" / f"python{python}" / "site-packages"
        command: list[str | Path] = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir",
            "--only-binary=:all:", "--target", site_packages, "--python-version", python,
            "--implementation", "cp", "--abi", abi, "--find-links", dist,
            f"edge-ems[hub]=={version}",
        ]  # fmt: skip
        for platform in platforms:
            command += ["--platform", platform]
        run(*command)
        wheels = sorted(p.name for p in site_packages.glob("*.dist-info"))
        size = sum(p.stat().st_size for p in site_packages.rglob("*") if p.is_file())
        say(f"app rootfs ({arch}, Python {python}, musllinux): {len(wheels)} distributions, "
            f"{size / 2**20:.0f} MiB, binary only")  # fmt: skip
        shutil.copytree(tree / "addon" / "rootfs", rootfs, dirs_exist_ok=True)
    scripts = sorted((rootfs / S6 / "scripts").glob("*.sh"))
    scripts += [rootfs / S6 / "s6-rc.d/edge-ems/run", rootfs / S6 / "s6-rc.d/edge-ems/finish"]
    run("shellcheck", *scripts)
    say(f"s6-overlay scripts: {len(scripts)} pass shellcheck")


@contextlib.contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="edge-ems-release-") as folder:
        yield Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make release-check", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--ha-version", help="default: the newest release on PyPI")
    parser.add_argument("--source", type=Path, help="a git archive tarball of the tree to check")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(SERVER_LOGGERS)
    started = time.monotonic()
    try:
        with workspace(args.keep) as folder:
            tree = clean_tree(folder, args.source)
            version = run(sys.executable, "-m", "scripts.release", "check", cwd=tree).strip()
            dist = folder / "dist"
            sdist, wheel = build(tree, dist)
            say(f"wheel: {wheel.name} (sdist {sdist.name}; twine check passed, LICENSE in both)")
            hacs = folder / "hacs"
            archive = run(sys.executable, "-m", "scripts.release", "zip", hacs, cwd=tree).strip()
            integration = folder / "integration"
            with zipfile.ZipFile(archive) as unpacked:
                unpacked.extractall(integration)  # noqa: S202 - the zip made just above
            ha_version = args.ha_version or newest_release("homeassistant")
            say(f"Home Assistant {ha_version} (newest release: {args.ha_version is None})")
            bin_dir = fresh_venv(folder / "venv", ha_version)
            if installed(bin_dir, "edge-ems") is not None:
                raise CheckError("the fresh venv has edge-ems before Home Assistant installs it")
            asyncio.run(home_assistant_check(folder, bin_dir, dist, integration, version))
            app_rootfs(folder, tree, dist, version)
    except CheckError as err:
        print(f"release-check: {err}", file=sys.stderr)
        return 1
    say(f"release-check passed in {time.monotonic() - started:.0f} s: {wheel.name} with "
        f"Home Assistant {ha_version}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
