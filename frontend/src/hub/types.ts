// The hub's answers as the dashboard reads them (hub/api/openapi.py is their reference).

export type Scalar = number | string | boolean | null;

export interface Asset {
  asset_id: string;
  name: string;
  site_id: string;
  site_name: string;
  type: string;
  capacity_wh: number;
  max_charge_w: number;
  max_discharge_w: number;
  configured: boolean;
  agent_id: string | null;
  connected: boolean;
}

/** What the device's agent last said of its polling (with its heartbeat). */
export interface DeviceStatus {
  answering: boolean | null;
  last_poll_ms: number | null;
  last_success_ms: number | null;
  last_error: string | null;
  polls: number;
  failed_polls: number;
  requests: number | null;
  breaker: string;
  reported_ms: number;
}

export interface Device {
  asset_id: string;
  site_id: string;
  name: string;
  type: string;
  agent_id: string | null;
  connected: boolean;
  last_sample_ms: number | null;
  metrics: string[];
  status?: DeviceStatus | null;
}

export interface Value {
  value: Scalar;
  timestamp_ms: number;
  unit: string | null;
}

export interface Snapshot {
  generated_ms: number;
  assets: { site_id: string; asset_id: string; values: Record<string, Value> }[];
}

export interface Telemetry {
  asset_id: string;
  site_id: string;
  connected: boolean;
  timestamp_ms: number | null;
  values: Record<string, Value>;
}

export interface Series {
  site_id: string;
  asset_id: string;
  metric: string;
  unit: string | null;
  /** One bucket per row, in the order of `columns`. */
  points: number[][];
}

export interface Measurements {
  resolution: string;
  from_ms: number;
  to_ms: number;
  columns: string[];
  series: Series[];
}

export interface Session {
  session_id: string;
  agent_id: string;
  peer: string;
  started: number;
  ended: number | null;
  end_reason: string | null;
}

export interface AgentRow {
  asset_id: string;
  asset_name: string;
  site_id: string;
  site_name: string;
  agent_id: string | null;
  peer: string | null;
  connected: boolean;
  last_seen: number | null;
  buffered_batches: number;
  dropped_points: number;
  sessions: Session[];
}

export interface AuditRecord {
  id: string;
  site_id: string;
  device_id: string | null;
  command: string;
  requested: Scalar;
  applied: Scalar;
  read_back: Scalar;
  outcome: string;
  reason: string;
  message: string;
  requested_by: string;
  source: string;
  timestamp: number;
  ttl: number | null;
}

export interface AuditPage {
  records: AuditRecord[];
  next_cursor: string | null;
}

export interface DispatchResult {
  command_id: string;
  agent_id: string;
  error: string | null;
  applied: boolean;
  records: AuditRecord[];
}

export interface Override {
  id: string;
  site_id: string;
  asset_id: string;
  command: string;
  value: number | boolean | string;
  start: string;
  end: string;
  start_ms: number;
  end_ms: number;
  requested_by: string;
  created_ms: number;
}

export interface PlanDay {
  day: string;
  actual_cost: number;
  until: string;
  savings_vs_self_consumption: number;
  savings_vs_no_battery: number;
}

/** `GET /plan`: the site plan document (edge-ems-site-plan/1). */
export interface SitePlan {
  schema: string;
  site_id: string;
  version: number;
  made_at: string;
  time_zone: string;
  plan: Record<string, unknown> | null;
  prices: Record<string, unknown> | null;
  step_cost: number[];
  days: PlanDay[];
}
