"""Release check: ``highspy`` installs from a wheel on every platform Home Assistant runs on.

Home Assistant OS and its containers run Python 3.14 on Alpine (musllinux) and Debian
(manylinux), on x86_64 and aarch64 (a Raspberry Pi). A platform without a wheel would make
pip build HiGHS from source on the user's device, which fails there (no compiler). This asks
pip for a binary-only download of ``highspy`` for each, no dependencies, into a temporary
directory; it needs PyPI, so it is not one of the offline tests.

Run: ``scripts/in-env python scripts/check_highspy_wheels.py [--python 3.14] [--spec
'highspy>=1.11']``. Prints one line per platform and exits 1 if any has no wheel.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

PLATFORMS = {
    "manylinux x86_64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"],
    "manylinux aarch64": ["manylinux_2_28_aarch64", "manylinux2014_aarch64"],
    "musllinux x86_64": ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64"],
    "musllinux aarch64": ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64"],
}


def check(label: str, tags: list[str], python: str, spec: str) -> str | None:
    """The wheel pip picks for ``label``, or ``None`` when there is none."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary", ":all:", "--python-version", python, "--dest", folder, spec,
        ]  # fmt: skip
        for tag in tags:
            command += ["--platform", tag]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        wheels = sorted(path.name for path in Path(folder).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            print(f"{label}: NO WHEEL ({reason})")
            return None
        print(f"{label}: {wheels[0]}")
        return wheels[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.14")
    parser.add_argument("--spec", default="highspy>=1.11")
    args = parser.parse_args()
    missing = [
        label
        for label, tags in PLATFORMS.items()
        if check(label, tags, args.python, args.spec) is None
    ]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
