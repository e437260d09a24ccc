// The hub's page: polls the REST API with relative URLs, so it works under HA ingress.
"use strict";

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(id, rows) {
  const body = document.getElementById(id);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : null;
}

async function get(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function refresh() {
  try {
    const [health, agents, snapshot, audit] = await Promise.all([
      get("health"), get("agents"), get("export/snapshot"), get("audit?limit=20"),
    ]);
    const status = document.getElementById("status");
    status.textContent = health.status;
    status.className = health.status === "ok" ? "ok" : "bad";
    document.getElementById("parts").textContent =
      `${health.gateway.connected_agents} agents connected · store ${health.store.backend}, ` +
      `${health.store.rows_written} rows written · Parquet ${health.parquet ? "on" : "off"} · ` +
      `uplink ${health.uplink ? "on" : "off"}`;
    fill("agents", agents.agents.map((row) => [
      cell(row.asset_name || row.asset_id), cell(row.site_name || row.site_id), cell(row.agent_id),
      cell(row.connected ? "yes" : "no", row.connected ? "ok" : "bad"), cell(when(row.last_seen)),
    ]));
    fill("values", snapshot.assets.flatMap((asset) => Object.entries(asset.values).map(
      ([metric, value]) => [
        cell(asset.asset_id), cell(metric),
        cell(`${value.value}${value.unit ? " " + value.unit : ""}`),
        cell(when(value.timestamp_ms / 1000)),
      ])));
    fill("audit", audit.records.map((record) => [
      cell(when(record.timestamp)), cell(record.device_id || record.site_id), cell(record.command),
      cell(record.applied), cell(record.outcome, record.outcome === "applied" ? "ok" : "bad"),
      cell(record.requested_by),
    ]));
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = error.message;
    status.className = "bad";
  }
}

refresh();
setInterval(refresh, 5000);
