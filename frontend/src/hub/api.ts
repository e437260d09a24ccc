// The hub's REST API as the dashboard calls it: relative URLs (so the page works on the
// hub's own port and under Home Assistant's ingress path alike), the API token only when
// the person gave one (never in the page the hub serves), JSON errors read into one class.

const TOKEN_KEY = "edge-ems-hub-token";

/** A refusal of the API (`{"error": {status, code, message}}`), or a network failure
 * (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: Record<string, unknown>;

  constructor(status: number, code: string, message: string, body: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** Where the token lives: this tab's session storage, gone when the tab closes. */
export interface TokenStore {
  get(): string | null;
  set(token: string | null): void;
}

export function sessionTokens(storage: Storage = window.sessionStorage): TokenStore {
  return {
    get: () => storage.getItem(TOKEN_KEY),
    set: (token) => (token ? storage.setItem(TOKEN_KEY, token) : storage.removeItem(TOKEN_KEY)),
  };
}

/** A token handed over in the address's fragment (`#token=...`, as `make demo` prints it):
 * the fragment never reaches the server; it is taken and wiped from the address bar. */
export function tokenFromFragment(hash: string): string | null {
  const match = /(?:^#|[#&?])token=([^&]+)/.exec(hash);
  return match?.[1] ? decodeURIComponent(match[1]) : null;
}

export type Query = Record<string, string | number | undefined | null | readonly string[]>;

/** `path?query` with empty values left out and lists comma-separated. */
export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export class HubApi {
  /** Called when the hub asks for a token (401): the page shows its token form. */
  onUnauthorized: (() => void) | null = null;

  readonly tokens: TokenStore;
  private readonly base: string;

  constructor(tokens: TokenStore, base = "") {
    this.tokens = tokens;
    this.base = base;
  }

  async get<T>(path: string, query: Query = {}): Promise<T> {
    return this.request<T>("GET", withQuery(path, query));
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  async delete<T>(path: string, query: Query = {}): Promise<T> {
    return this.request<T>("DELETE", withQuery(path, query));
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const token = this.tokens.get();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "network", `the hub cannot be reached (${String(err)})`);
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data as { error?: { code?: string; message?: string } } | null)?.error;
      if (response.status === 401) this.onUnauthorized?.();
      throw new ApiError(
        response.status,
        error?.code ?? "http_error",
        error?.message ?? `HTTP ${response.status}`,
        (data as Record<string, unknown>) ?? {},
      );
    }
    return data as T;
  }
}
