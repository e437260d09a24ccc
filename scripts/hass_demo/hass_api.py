"""Home Assistant's HTTP and websocket API, as the frontend uses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from .processes import DemoError, HomeAssistantProcess

USER = "demo"
PASSWORD = "edge-ems-demo"  # noqa: S105 - a throwaway login for a local demo, printed anyway
START_TIMEOUT = 300.0
"""Home Assistant's first start installs nothing (``--skip-pip``) but still takes a while on a
small machine."""
LOADED_TIMEOUT = 180.0

type Answer = Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""What to answer in a step: fixed values, or values made from the form HA shows."""


class HomeAssistantApi:
    """Home Assistant's HTTP API, as the frontend uses it."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self.url = url
        self.client_id = f"{url}/"
        self._token: str | None = None

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; a refusal becomes a :class:`DemoError` with HA's message."""
        async with self._session.request(
            method, f"{self.url}{path}", json=body, headers=self._headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise DemoError(f"{method} {path}: {response.status} {text[:500]}")
            return json.loads(text) if text else None

    async def wait_until_up(self, hass: HomeAssistantProcess) -> None:
        """Until the onboarding API answers."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if hass.exited():
                log = await asyncio.to_thread(hass.log_tail)
                raise DemoError(f"Home Assistant stopped while starting:\n{log}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, DemoError):
                await self.request("GET", "/api/onboarding")
                return
            await asyncio.sleep(1.0)
        raise DemoError(f"Home Assistant did not answer in {START_TIMEOUT:.0f} s")

    async def onboard(self) -> None:
        """Create the demo user and finish onboarding, keeping the user's token."""
        created = await self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Demo",
                "username": USER,
                "password": PASSWORD,
                "language": "en",
            },
        )
        form = {
            "grant_type": "authorization_code",
            "code": created["auth_code"],
            "client_id": self.client_id,
        }
        async with self._session.post(f"{self.url}/auth/token", data=form) as response:
            if response.status != 200:
                raise DemoError(f"login failed: {response.status} {await response.text()}")
            self._token = (await response.json())["access_token"]
        await self.request("POST", "/api/onboarding/core_config")
        await self.request("POST", "/api/onboarding/analytics")
        await self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": self.client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )

    async def run_flow(
        self, index: str, start: Mapping[str, Any], steps: Mapping[str, Answer]
    ) -> Any:
        """Walk a config, subentry or options flow to its end with ``steps``' answers."""
        result = await self.request("POST", index, dict(start))
        while result.get("type") == "form":
            step_id = result["step_id"]
            if result.get("errors"):
                raise DemoError(f"{start}: step {step_id} refused: {result['errors']}")
            answer = steps.get(step_id)
            if answer is None:
                raise DemoError(f"{start}: the flow asks for step {step_id!r}, which the demo "
                                f"does not know; fields: {result.get('data_schema')}")  # fmt: skip
            values = answer(result) if callable(answer) else answer
            result = await self.request("POST", f"{index}/{result['flow_id']}", dict(values))
        if result.get("type") != "create_entry":
            raise DemoError(f"{start}: the flow ended with {result}")
        return result

    async def wait_loaded(self, entry_id: str) -> None:
        """Until the config entry is set up."""
        deadline = time.monotonic() + LOADED_TIMEOUT
        state = "unknown"
        while time.monotonic() < deadline:
            entries = await self.request("GET", "/api/config/config_entries/entry")
            state = next((e["state"] for e in entries if e["entry_id"] == entry_id), "missing")
            if state == "loaded":
                return
            await asyncio.sleep(1.0)
        raise DemoError(f"the site did not load in {LOADED_TIMEOUT:.0f} s (state {state})")

    async def websocket(self, command: Mapping[str, Any]) -> Any:
        """One command over the websocket API, as the frontend sends it."""
        async with self._session.ws_connect(f"{self.url}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self._token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise DemoError("the websocket API refused the demo user's token")
            await ws.send_json({"id": 1, **command})
            reply = await ws.receive_json()
        if not reply.get("success"):
            raise DemoError(f"{command['type']}: {reply.get('error')}")
        return reply["result"]

    async def template(self, template: str) -> Any:
        """Render a template in Home Assistant and decode its JSON result."""
        async with self._session.post(
            f"{self.url}/api/template", json={"template": template}, headers=self._headers
        ) as response:
            text = await response.text()
            if response.status != 200:
                raise DemoError(f"template: {response.status} {text[:300]}")
            return json.loads(text)

    async def states(self, domain: str) -> dict[str, dict[str, Any]]:
        """Every entity of an integration's, with its state, by entity id."""
        found = await self.template("{{ integration_entities('" + domain + "') | to_json }}")
        return {
            entity_id: await self.request("GET", f"/api/states/{entity_id}") for entity_id in found
        }

    async def repairs(self) -> list[str]:
        """The repairs Home Assistant shows, as ``domain: key``."""
        issues = await self.websocket({"type": "repairs/list_issues"})
        return [f"{issue['domain']}: {issue['translation_key']}" for issue in issues["issues"]]
