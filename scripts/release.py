"""One version for everything Edge EMS ships, and the pieces a release is made of.

``pyproject.toml``'s ``[project] version`` is the version; everything else that states one
follows it: the integration's manifest (``version`` and the ``edge-ems==`` requirement Home
Assistant installs), the app's ``config.yaml`` (``version``, which names its image tag) and
its Dockerfile's default ``BUILD_VERSION`` (the ``edge-ems[hub]`` the image installs), and the
changelogs. A release is tagged ``v<version>``; the release workflow refuses a tag that
disagrees with the files.

    python -m scripts.release version              the version
    python -m scripts.release check [--tag vX.Y.Z] every file agrees (and with the tag)
    python -m scripts.release set X.Y.Z            write X.Y.Z everywhere; the changelog's
                                                   "Unreleased" becomes "X.Y.Z (date)"
    python -m scripts.release notes X.Y.Z          the changelog's section for X.Y.Z
    python -m scripts.release zip DIR              DIR/edge_ems.zip, the integration as HACS
                                                   installs it (zip_release)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
MANIFEST = REPO / "custom_components" / "edge_ems" / "manifest.json"
INTEGRATION = MANIFEST.parent
APP_CONFIG = REPO / "addon" / "config.yaml"
DOCKERFILE = REPO / "addon" / "Dockerfile"
CHANGELOG = REPO / "CHANGELOG.md"
APP_CHANGELOG = REPO / "addon" / "CHANGELOG.md"
HACS = REPO / "hacs.json"
PACKAGE = "edge-ems"
UNRELEASED = "Unreleased"

VERSION = re.compile(r"^\d+\.\d+\.\d+$")
"""What a release may be numbered: major.minor.patch (HACS and the Supervisor compare them)."""
HEADING = re.compile(r"^## (\S+)", re.MULTILINE)
PYPROJECT_VERSION = re.compile(r'^(version = ")([^"]+)(")$', re.MULTILINE)
APP_VERSION = re.compile(r'^(version: ")([^"]+)(")$', re.MULTILINE)
BUILD_VERSION = re.compile(r"^(ARG BUILD_VERSION=)(\S+)()$", re.MULTILINE)


class ReleaseError(Exception):
    """The files disagree, or a release cannot be made as asked; the message says how."""


def version() -> str:
    """The version: ``pyproject.toml``'s."""
    project: str = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    return project


def _one(pattern: re.Pattern[str], text: str, where: Path) -> str:
    found = pattern.findall(text)
    if len(found) != 1:
        raise ReleaseError(f"{where.relative_to(REPO)}: expected one {pattern.pattern!r}")
    return str(found[0][1])


def _headings(path: Path) -> list[str]:
    return HEADING.findall(path.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class Stated:
    """Where a version is stated, and which."""

    where: str
    version: str


def stated() -> list[Stated]:
    """Every version the shipped files state."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    pins = [req for req in manifest.get("requirements", []) if req.startswith(f"{PACKAGE}==")]
    if len(pins) != 1:
        raise ReleaseError(f"manifest.json: expected one requirement {PACKAGE}==<version>")
    app = yaml.safe_load(APP_CONFIG.read_text(encoding="utf-8"))
    return [
        Stated("pyproject.toml [project] version", version()),
        Stated("manifest.json version", manifest["version"]),
        Stated("manifest.json requirement", pins[0].removeprefix(f"{PACKAGE}==")),
        Stated("addon/config.yaml version", str(app["version"])),
        Stated(
            "addon/Dockerfile BUILD_VERSION",
            _one(BUILD_VERSION, DOCKERFILE.read_text(encoding="utf-8"), DOCKERFILE),
        ),
        Stated("addon/CHANGELOG.md first heading", next(iter(_headings(APP_CHANGELOG)), "")),
    ]


def check(tag: str | None = None) -> str:
    """The version, once every file agrees with it (and ``tag`` is ``v<version>``, whose
    section the changelog has)."""
    current = version()
    if not VERSION.match(current):
        raise ReleaseError(f"version {current!r} is not major.minor.patch")
    wrong = [f"{s.where} says {s.version!r}" for s in stated() if s.version != current]
    if wrong:
        raise ReleaseError(f"the version is {current}, but " + "; ".join(wrong))
    headings = _headings(CHANGELOG)
    if not headings or headings[0] not in (UNRELEASED, current):
        raise ReleaseError(f"CHANGELOG.md must open with '## {UNRELEASED}' or '## {current}'")
    if tag is not None:
        if tag != f"v{current}":
            raise ReleaseError(f"tag {tag} is not v{current}, the version in the files")
        if current not in headings:
            raise ReleaseError(f"CHANGELOG.md has no '## {current}' section")
    return current


def _replace(pattern: re.Pattern[str], new: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    _one(pattern, text, path)
    path.write_text(pattern.sub(lambda m: m.group(1) + new + m.group(3), text), encoding="utf-8")


def set_version(new: str, today: dt.date | None = None) -> None:
    """Write ``new`` into every file that states the version, and give it the changelog's
    unreleased section (dated ``today``)."""
    if not VERSION.match(new):
        raise ReleaseError(f"{new!r} is not major.minor.patch")
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    changelog = CHANGELOG.read_text(encoding="utf-8")
    if f"\n## {new}" in changelog:
        raise ReleaseError(f"CHANGELOG.md already has a section for {new}")
    if f"\n## {UNRELEASED}\n" not in changelog:
        raise ReleaseError(f"CHANGELOG.md has no '## {UNRELEASED}' section to release")
    _replace(PYPROJECT_VERSION, new, PYPROJECT)
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    manifest["version"] = new
    manifest["requirements"] = [
        f"{PACKAGE}=={new}" if req.startswith(f"{PACKAGE}==") else req
        for req in manifest["requirements"]
    ]
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _replace(APP_VERSION, new, APP_CONFIG)
    _replace(BUILD_VERSION, new, DOCKERFILE)
    CHANGELOG.write_text(
        changelog.replace(f"\n## {UNRELEASED}\n", f"\n## {new} ({day})\n", 1), encoding="utf-8"
    )
    app = APP_CHANGELOG.read_text(encoding="utf-8")
    title, _, rest = app.partition("\n## ")
    entry = (f"## {new}\n\n- The hub of Edge EMS {new}; what changed is in the repository's "
             "CHANGELOG.md.\n\n")  # fmt: skip
    APP_CHANGELOG.write_text(f"{title.rstrip()}\n\n{entry}## {rest}", encoding="utf-8")


def notes(release: str) -> str:
    """The changelog's section for ``release``, as the GitHub release's text."""
    text = CHANGELOG.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(release)}\b.*?\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ReleaseError(f"CHANGELOG.md has no '## {release}' section")
    return match.group(1).strip() + "\n"


def hacs_zip(folder: Path, tree: Path = REPO) -> Path:
    """``folder/<hacs.json filename>``: the integration of the checkout at ``tree``, its files
    at the archive's root, as HACS unpacks a ``zip_release`` asset into
    ``custom_components/edge_ems``."""
    name: str = json.loads((tree / HACS.name).read_text(encoding="utf-8"))["filename"]
    integration = tree / INTEGRATION.relative_to(REPO)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    files = sorted(
        path
        for path in integration.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(integration).as_posix())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.release", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version")
    checking = commands.add_parser("check")
    checking.add_argument("--tag")
    setting = commands.add_parser("set")
    setting.add_argument("version")
    noting = commands.add_parser("notes")
    noting.add_argument("version")
    zipping = commands.add_parser("zip")
    zipping.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print(version())
        elif args.command == "check":
            print(check(args.tag))
        elif args.command == "set":
            set_version(args.version)
            print(check())
        elif args.command == "notes":
            print(notes(args.version), end="")
        else:
            print(hacs_zip(args.folder))
    except ReleaseError as err:
        print(f"release: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
