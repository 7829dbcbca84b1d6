// Every call the console makes: same origin, the session cookie, and on a change the
// session's CSRF token (GET /auth/session gives it). Errors carry the contract's message.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken = "";

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "same-origin",
  });
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      data && typeof data === "object" && "message" in data
        ? String((data as { message: unknown }).message)
        : `The server answered ${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data as T;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return `The request failed: ${error.message}`;
  return "The request failed";
}

export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// --- Wire shapes (the parts the console reads) -----------------------------------------

export interface Metadata {
  id: string;
  accountId: string;
  name: string;
  profileId: string;
  externalId: string;
  labels: Record<string, string>;
  createdAt: string;
}

export interface Page<T> {
  items: T[];
  pagination: { nextCursor: string; total: number };
}

export interface Profile {
  metadata: Metadata;
  spec: { type: string; email: string; name: string; role?: string };
  info: { deactivated: boolean };
}

export interface Session {
  profile: Profile;
  permissions: string[];
  csrfToken: string;
  expiresAt: string;
}

export interface Workspace {
  metadata: Metadata;
  spec: { description: string };
  status: string;
}

export interface Account {
  metadata: Metadata;
  spec: { domain: string; description: string; billingEmail: string; workspaces: Workspace[] };
  info: { webhookEventsHmacSecret: string; challengeToken: string; previousSecretExpiresAt: string };
}

export interface Member {
  profileId: string;
  actorId: string;
  name: string;
  email: string;
  addedAt: string;
}

export interface ApiKey {
  metadata: Metadata;
  spec: {
    token: string;
    description: string;
    permissions: string[];
    allWorkspaces: boolean;
    workspaceAssignments: { workspaceId: string }[];
  };
  state: string;
  info: { lastUsedAt: string; workspaces: Workspace[] };
}

export interface WebhookEndpoint {
  metadata: Metadata;
  spec: { url: string; description: string; eventTypes: string[] };
  info: { status: string; disabledReason: string; lastSuccessAt: string };
}

export interface Delivery {
  metadata: { id: string; createdAt: string };
  data: {
    webhookId: string;
    eventType: string;
    status: string;
    attemptCount: number;
    httpStatusCode: number;
    errorMessage: string;
    lastAttemptAt: string;
    nextAttemptAt: string;
  };
}

export interface SsoConnection {
  metadata: Metadata;
  spec: {
    issuer: string;
    clientId: string;
    clientSecret: string;
    allowedEmailDomains: string[];
    roleMapping: { claim: string; adminValues: string[] };
    createProfiles: boolean;
  };
  info: { callbackUrl: string };
}

export interface AuditEvent {
  id: string;
  actorProfileId: string;
  apiKeyId: string;
  action: string;
  resourceId: string;
  requestId: string;
  createdAt: string;
}
