// The console's pages. Each reads what it shows from the API and shows the contract's
// error message when a call fails; administrative actions appear only to administrators
// (the server refuses them to anyone else regardless).
import { useState } from "preact/hooks";
import {
  api,
  query,
  type Account,
  type ApiKey,
  type AuditEvent,
  type Delivery,
  type Member,
  type Page,
  type Profile,
  type SsoConnection,
  type WebhookEndpoint,
  type Workspace,
} from "./api";
import { Highlight, Picker } from "./picker";
import { navigate } from "./router";
import {
  Alert,
  ConfirmButton,
  CopyButton,
  Link,
  PROFILE_TYPES,
  Status,
  useAction,
  useLoad,
  when,
} from "./ui";

type Props = { admin: boolean };

const GRACE_PERIODS: [number, string][] = [
  [0, "None: the old secret stops at once"],
  [3600, "1 hour"],
  [86400, "24 hours"],
  [604800, "7 days"],
];

function value(event: Event): string {
  return (event.target as HTMLInputElement).value;
}

// --- Account -----------------------------------------------------------------------------

export function AccountPage({ admin }: Props) {
  const { data: account, error, setData } = useLoad(() => api<Account>("GET", "/v1/account"), []);
  const [revealed, setRevealed] = useState(false);
  const [grace, setGrace] = useState(86400);
  const action = useAction();
  if (!account) return <Alert message={error} />;
  const secret = account.info.webhookEventsHmacSecret;
  return (
    <>
      <h1>Account</h1>
      <Alert message={error || action.error} />
      <Status message={action.notice} />
      <dl class="facts">
        <dt>Name</dt>
        <dd>{account.metadata.name}</dd>
        <dt>Domain</dt>
        <dd>{account.spec.domain || "—"}</dd>
        <dt>Id</dt>
        <dd><code>{account.metadata.id}</code></dd>
        <dt>Created</dt>
        <dd>{when(account.metadata.createdAt)}</dd>
      </dl>
      <h2>Workspaces</h2>
      <ul class="plain">
        {account.spec.workspaces.map((workspace) => (
          <li key={workspace.metadata.id}>
            <Link to={`/workspaces/${workspace.metadata.id}`}>{workspace.metadata.name}</Link>
          </li>
        ))}
      </ul>
      {admin && (
        <section aria-labelledby="secret-heading">
          <h2 id="secret-heading">Webhook signing secret</h2>
          <p>
            Receivers verify every webhook with it (Standard Webhooks).{" "}
            {account.info.previousSecretExpiresAt &&
              `The previous secret is still accepted until ${when(account.info.previousSecretExpiresAt)}.`}
          </p>
          <p class="secret">
            <code data-testid="webhook-secret">{revealed ? secret : "whsec_" + "•".repeat(24)}</code>{" "}
            <button type="button" aria-pressed={revealed} onClick={() => setRevealed(!revealed)}>
              {revealed ? "Hide secret" : "Reveal secret"}
            </button>
            {revealed && <CopyButton text={secret} label="Copy secret" />}
          </p>
          <div class="row">
            <label>
              Grace period for the old secret
              <select value={grace} onChange={(event) => setGrace(Number(value(event)))}>
                {GRACE_PERIODS.map(([seconds, label]) => (
                  <option key={seconds} value={seconds}>
                    {label}
                  </option>
                ))}
              </select>
            </label>
            <ConfirmButton
              label="Rotate secret…"
              question="Make a new signing secret? Receivers must be given it."
              confirm="Rotate now"
              danger
              onConfirm={() =>
                action.run(async () => {
                  const rotated = await api<{ webhookEventsHmacSecret: string }>(
                    "POST",
                    "/v1/account:rotateWebhookSigningKey",
                    { gracePeriodSeconds: grace },
                  );
                  const fresh = await api<Account>("GET", "/v1/account");
                  setData({
                    ...fresh,
                    info: { ...fresh.info, webhookEventsHmacSecret: rotated.webhookEventsHmacSecret },
                  });
                  setRevealed(true);
                }, "The webhook signing secret was rotated.")
              }
            />
          </div>
        </section>
      )}
    </>
  );
}

// --- Profiles ----------------------------------------------------------------------------

export function ProfilesPage() {
  return (
    <>
      <h1>Profiles</h1>
      <p>Search every profile of the account: people, API keys and system profiles.</p>
      <Picker
        label="Search profiles"
        showFilters
        onPick={(profile) => navigate(`/profiles/${profile.metadata.id}`)}
      />
    </>
  );
}

export function ProfilePage({ id, admin }: Props & { id: string }) {
  const { data: profile, error, setData } = useLoad(
    () => api<Profile>("GET", `/v1/account/profiles/${id}`),
    [id],
  );
  const { data: workspaces } = useLoad(
    () => api<Page<Workspace>>("GET", `/v1/account/profiles/${id}/workspaces?limit=100`),
    [id],
  );
  const action = useAction();
  const [deleted, setDeleted] = useState(false);
  if (!profile) return <Alert message={error} />;
  const isUser = profile.spec.type === "PROFILE_TYPE_USER";
  const labels = Object.entries(profile.metadata.labels);
  return (
    <>
      <h1>{profile.spec.name || profile.spec.email || profile.metadata.id}</h1>
      <Alert message={action.error} />
      <Status message={action.notice} />
      {profile.info.deactivated && (
        <p class="warning">
          Deactivated by the identity provider: this person can neither sign in nor call the API.
        </p>
      )}
      <dl class="facts">
        <dt>Email</dt>
        <dd>{profile.spec.email || "—"}</dd>
        <dt>Type</dt>
        <dd>{PROFILE_TYPES[profile.spec.type] ?? profile.spec.type}</dd>
        <dt>Role</dt>
        <dd>{profile.spec.role || "—"}</dd>
        <dt>Labels</dt>
        <dd>{labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(", ") : "—"}</dd>
        <dt>Id</dt>
        <dd><code>{profile.metadata.id}</code></dd>
        <dt>Created</dt>
        <dd>{when(profile.metadata.createdAt)}</dd>
      </dl>
      <h2>Workspaces</h2>
      {workspaces && workspaces.items.length === 0 && <p>Member of no workspace.</p>}
      <ul class="plain">
        {workspaces?.items.map((workspace) => (
          <li key={workspace.metadata.id}>
            <Link to={`/workspaces/${workspace.metadata.id}`}>{workspace.metadata.name}</Link>
          </li>
        ))}
      </ul>
      <p>
        <Link to={`/audit?actor=${profile.metadata.id}`}>Changes made by this profile</Link>
      </p>
      {admin && isUser && !deleted && (
        <div class="row">
          <button
            type="button"
            disabled={action.busy}
            onClick={() =>
              action.run(async () => {
                const role = profile.spec.role === "admin" ? "member" : "admin";
                setData(
                  await api<Profile>("PATCH", `/v1/account/profiles/${id}`, {
                    spec: { role },
                    updateMask: "spec.role",
                  }),
                );
              }, "The role was changed.")
            }
          >
            {profile.spec.role === "admin" ? "Make member" : "Make administrator"}
          </button>
          <ConfirmButton
            label="Delete profile…"
            question="Delete this profile and its memberships?"
            confirm="Delete"
            danger
            onConfirm={() =>
              action.run(async () => {
                await api("DELETE", `/v1/account/profiles/${id}`);
                setDeleted(true);
              }, "The profile was deleted.")
            }
          />
        </div>
      )}
    </>
  );
}

// --- Workspaces --------------------------------------------------------------------------

export function WorkspacesPage({ admin }: Props) {
  const [archived, setArchived] = useState(false);
  const { data, error, reload } = useLoad(
    () =>
      api<Page<Workspace>>("GET", "/v1/account/workspaces" + query({ limit: 1000, includeArchived: archived ? "true" : "" })),
    [archived],
  );
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const action = useAction();
  return (
    <>
      <h1>Workspaces</h1>
      <Alert message={error || action.error} />
      <Status message={action.notice} />
      {admin && (
        <form
          class="card"
          onSubmit={(event) => {
            event.preventDefault();
            action.run(async () => {
              await api("POST", "/v1/account/workspaces", {
                metadata: { name },
                spec: { description },
              });
              setName("");
              setDescription("");
              reload();
            }, `Workspace ${name} was created.`);
          }}
        >
          <h2>New workspace</h2>
          <label>
            Name
            <input required value={name} onInput={(event) => setName(value(event))} />
          </label>
          <label>
            Description
            <input value={description} onInput={(event) => setDescription(value(event))} />
          </label>
          <button type="submit" class="primary" disabled={action.busy}>
            Create workspace
          </button>
        </form>
      )}
      <label class="inline">
        <input type="checkbox" checked={archived} onChange={() => setArchived(!archived)} /> Show
        archived workspaces
      </label>
      <p class="count">{data ? `${data.pagination.total} workspaces` : ""}</p>
      <ul class="cards">
        {data?.items.map((workspace) => (
          <li key={workspace.metadata.id}>
            <Link to={`/workspaces/${workspace.metadata.id}`}>{workspace.metadata.name}</Link>{" "}
            {workspace.status === "STATUS_ARCHIVED" && <span class="badge">Archived</span>}
            <span class="muted">{workspace.spec.description}</span>
          </li>
        ))}
      </ul>
    </>
  );
}

export function WorkspacePage({ id, admin }: Props & { id: string }) {
  const { data: workspace, error, setData } = useLoad(
    () => api<Workspace>("GET", `/v1/account/workspaces/${id}`),
    [id],
  );
  const { data: members, reload } = useLoad(
    () => api<Page<Member>>("GET", `/v1/account/workspaces/${id}/members?limit=1000`),
    [id],
  );
  const [name, setName] = useState<string | null>(null);
  const action = useAction();
  if (!workspace) return <Alert message={error} />;
  const archived = workspace.status === "STATUS_ARCHIVED";
  const canChange = admin && !archived;
  return (
    <>
      <h1>{workspace.metadata.name}</h1>
      <Alert message={action.error} />
      <Status message={action.notice} />
      <dl class="facts">
        <dt>Status</dt>
        <dd>{archived ? "Archived" : "Active"}</dd>
        <dt>Description</dt>
        <dd>{workspace.spec.description || "—"}</dd>
        <dt>Id</dt>
        <dd><code>{workspace.metadata.id}</code></dd>
      </dl>
      {canChange && (
        <form
          class="row"
          onSubmit={(event) => {
            event.preventDefault();
            action.run(async () => {
              setData(
                await api<Workspace>("PATCH", `/v1/account/workspaces/${id}`, {
                  metadata: { name: name ?? workspace.metadata.name },
                  updateMask: "metadata.name",
                }),
              );
              setName(null);
            }, "The workspace was renamed.");
          }}
        >
          <label>
            Name
            <input required value={name ?? workspace.metadata.name} onInput={(event) => setName(value(event))} />
          </label>
          <button type="submit">Rename</button>
          <ConfirmButton
            label="Archive…"
            question="Archive this workspace? It can no longer be changed."
            confirm="Archive"
            danger
            onConfirm={() =>
              action.run(async () => {
                await api("DELETE", `/v1/account/workspaces/${id}`);
                setData(await api<Workspace>("GET", `/v1/account/workspaces/${id}`));
              }, "The workspace was archived.")
            }
          />
        </form>
      )}
      <h2>Members</h2>
      <p class="count">{members ? `${members.pagination.total} members` : ""}</p>
      <ul class="cards" aria-label="Members">
        {members?.items.map((member) => (
          <li key={member.profileId}>
            <Link to={`/profiles/${member.profileId}`}>{member.name || member.email}</Link>
            <span class="muted">{member.email}</span>
            {canChange && (
              <button
                type="button"
                aria-label={`Remove ${member.name || member.email}`}
                onClick={() =>
                  action.run(async () => {
                    await api("DELETE", `/v1/account/workspaces/${id}/members/${member.profileId}`);
                    reload();
                  }, `${member.name || member.email} was removed.`)
                }
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {canChange && (
        <section aria-labelledby="add-member">
          <h2 id="add-member">Add a member</h2>
          <Picker
            label="Find a person"
            type="PROFILE_TYPE_USER"
            onPick={(profile) =>
              action.run(async () => {
                await api("POST", `/v1/account/workspaces/${id}/members`, {
                  profileId: profile.metadata.id,
                });
                reload();
              }, `${profile.spec.name || profile.spec.email} was added.`)
            }
          />
        </section>
      )}
    </>
  );
}

// --- API keys ----------------------------------------------------------------------------

const SCOPES = [
  "*",
  "account:manage",
  "workspaces:read",
  "workspaces:manage",
  "api_keys:read",
  "api_keys:manage",
  "webhooks:read",
  "webhooks:manage",
  "scim:manage",
  "agents:read",
  "agents:manage",
  "objectives:read",
  "objectives:manage",
  "tools:read",
  "tools:manage",
  "memory:read",
  "memory:manage",
  "secrets:manage",
];

function TokenOnce({ token, what }: { token: string; what: string }) {
  if (!token) return null;
  return (
    <div class="card token" role="region" aria-label={`${what} token`}>
      <p>
        <strong>Copy this token now:</strong> it is shown once.
      </p>
      <code data-testid="token">{token}</code> <CopyButton text={token} label="Copy token" />
    </div>
  );
}

function KeyForm(props: { scopes?: string[]; onCreated: (key: ApiKey) => void; title: string }) {
  const { data: workspaces } = useLoad(
    () => api<Page<Workspace>>("GET", "/v1/account/workspaces?limit=1000"),
    [],
  );
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [scopes, setScopes] = useState<string[]>(props.scopes ?? []);
  const [all, setAll] = useState(false);
  const [chosen, setChosen] = useState<string[]>([]);
  const action = useAction();
  const toggle = (list: string[], item: string) =>
    list.includes(item) ? list.filter((x) => x !== item) : [...list, item];
  return (
    <form
      class="card"
      onSubmit={(event) => {
        event.preventDefault();
        action.run(async () => {
          const key = await api<ApiKey>("POST", "/v1/account/api_keys", {
            metadata: { name },
            spec: {
              description,
              permissions: scopes,
              allWorkspaces: all,
              workspaceAssignments: all ? [] : chosen.map((workspaceId) => ({ workspaceId })),
            },
          });
          setName("");
          setDescription("");
          props.onCreated(key);
        });
      }}
    >
      <h2>{props.title}</h2>
      <Alert message={action.error} />
      <label>
        Name
        <input required value={name} onInput={(event) => setName(value(event))} />
      </label>
      <label>
        Description
        <input value={description} onInput={(event) => setDescription(value(event))} />
      </label>
      {!props.scopes && (
        <fieldset>
          <legend>Scopes</legend>
          <div class="checks">
            {SCOPES.map((scope) => (
              <label key={scope} class="inline">
                <input
                  type="checkbox"
                  checked={scopes.includes(scope)}
                  onChange={() => setScopes(toggle(scopes, scope))}
                />{" "}
                {scope === "*" ? "* (everything)" : scope}
              </label>
            ))}
          </div>
        </fieldset>
      )}
      <fieldset>
        <legend>Workspaces</legend>
        <label class="inline">
          <input type="checkbox" checked={all} onChange={() => setAll(!all)} /> All workspaces
        </label>
        <div class="checks">
          {!all &&
            workspaces?.items.map((workspace) => (
              <label key={workspace.metadata.id} class="inline">
                <input
                  type="checkbox"
                  checked={chosen.includes(workspace.metadata.id)}
                  onChange={() => setChosen(toggle(chosen, workspace.metadata.id))}
                />{" "}
                {workspace.metadata.name}
              </label>
            ))}
        </div>
      </fieldset>
      <button type="submit" class="primary" disabled={action.busy}>
        Create key
      </button>
    </form>
  );
}

function KeyRow({ apiKey, onChange }: { apiKey: ApiKey; onChange: () => void }) {
  const action = useAction();
  const [token, setToken] = useState("");
  const id = apiKey.metadata.id;
  const enabled = apiKey.state === "STATE_ENABLED";
  const call = (path: string, done: string, keepToken = false) =>
    action.run(async () => {
      const key = await api<ApiKey>("POST", `/v1/account/api_keys/${id}:${path}`);
      if (keepToken) setToken(key.spec.token);
      onChange();
    }, done);
  return (
    <li class="key">
      <div>
        <strong>{apiKey.metadata.name}</strong>{" "}
        <span class={enabled ? "badge ok" : "badge warn"}>{enabled ? "Enabled" : "Disabled"}</span>
        <span class="muted">
          {apiKey.spec.permissions.join(", ") || "no scopes"} ·{" "}
          {apiKey.spec.allWorkspaces
            ? "all workspaces"
            : `${apiKey.info.workspaces.length} workspace(s)`}{" "}
          · last used {when(apiKey.info.lastUsedAt)}
        </span>
      </div>
      <Alert message={action.error} />
      <Status message={action.notice} />
      <TokenOnce token={token} what={apiKey.metadata.name} />
      <div class="row">
        <ConfirmButton
          label="Rotate…"
          question="Make a new token? The old one stops working."
          confirm="Rotate"
          onConfirm={() => call("rotate", "The key was rotated.", true)}
        />
        <button type="button" onClick={() => call("reveal", "The token is shown below.", true)}>
          Reveal
        </button>
        {enabled ? (
          <button type="button" onClick={() => call("disable", "The key was disabled.")}>
            Disable
          </button>
        ) : (
          <button type="button" onClick={() => call("enable", "The key was enabled.")}>
            Enable
          </button>
        )}
        <ConfirmButton
          label="Delete…"
          question="Delete this key? Calls made with it stop at once."
          confirm="Delete"
          danger
          onConfirm={() =>
            action.run(async () => {
              await api("DELETE", `/v1/account/api_keys/${id}`);
              onChange();
            })
          }
        />
      </div>
    </li>
  );
}

export function ApiKeysPage() {
  const { data, error, reload } = useLoad(
    () => api<Page<ApiKey>>("GET", "/v1/account/api_keys?limit=1000"),
    [],
  );
  const [created, setCreated] = useState<ApiKey | null>(null);
  return (
    <>
      <h1>API keys</h1>
      <Alert message={error} />
      {created && <TokenOnce token={created.spec.token} what={created.metadata.name} />}
      <KeyForm
        title="New API key"
        onCreated={(key) => {
          setCreated(key);
          reload();
        }}
      />
      <p class="count">{data ? `${data.pagination.total} keys` : ""}</p>
      <ul class="cards" aria-label="API keys">
        {data?.items.map((key) => <KeyRow key={key.metadata.id} apiKey={key} onChange={reload} />)}
      </ul>
    </>
  );
}

// --- Webhooks ----------------------------------------------------------------------------

export function WebhooksPage() {
  const { data, error, reload } = useLoad(
    () => api<Page<WebhookEndpoint>>("GET", "/v1/account/webhook_endpoints?limit=1000"),
    [],
  );
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [types, setTypes] = useState("");
  const action = useAction();
  return (
    <>
      <h1>Webhooks</h1>
      <Alert message={error || action.error} />
      <Status message={action.notice} />
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          action.run(async () => {
            const created = await api<WebhookEndpoint>("POST", "/v1/account/webhook_endpoints", {
              metadata: { name: description || url },
              spec: {
                url,
                description,
                eventTypes: types.split(",").map((t) => t.trim()).filter(Boolean),
              },
            });
            setUrl("");
            setDescription("");
            setTypes("");
            reload();
            navigate(`/webhooks/${created.metadata.id}`);
          });
        }}
      >
        <h2>New endpoint</h2>
        <label>
          URL
          <input required type="url" value={url} onInput={(event) => setUrl(value(event))} />
        </label>
        <label>
          Description
          <input value={description} onInput={(event) => setDescription(value(event))} />
        </label>
        <label>
          Event types (comma-separated; empty for all)
          <input value={types} onInput={(event) => setTypes(value(event))} />
        </label>
        <button type="submit" class="primary">
          Add endpoint
        </button>
      </form>
      <ul class="cards" aria-label="Endpoints">
        {data?.items.map((endpoint) => (
          <li key={endpoint.metadata.id}>
            <Link to={`/webhooks/${endpoint.metadata.id}`}>{endpoint.spec.url}</Link>{" "}
            <EndpointStatus endpoint={endpoint} />
            <span class="muted">{endpoint.spec.description}</span>
          </li>
        ))}
      </ul>
    </>
  );
}

function EndpointStatus({ endpoint }: { endpoint: WebhookEndpoint }) {
  const active = endpoint.info.status === "WEBHOOK_ENDPOINT_STATUS_ACTIVE";
  return (
    <span class={active ? "badge ok" : "badge warn"}>
      {active ? "Active" : `Disabled${endpoint.info.disabledReason ? ` (${endpoint.info.disabledReason})` : ""}`}
    </span>
  );
}

const DELIVERY_STATUS: Record<string, string> = {
  WEBHOOK_DELIVERY_STATUS_PENDING: "Pending",
  WEBHOOK_DELIVERY_STATUS_COMPLETED: "Delivered",
  WEBHOOK_DELIVERY_STATUS_FAILED: "Failed",
  WEBHOOK_DELIVERY_STATUS_DISABLED: "Endpoint disabled",
};

export function WebhookEndpointPage({ id }: { id: string }) {
  const { data: endpoint, error, setData } = useLoad(
    () => api<WebhookEndpoint>("GET", `/v1/account/webhook_endpoints/${id}`),
    [id],
  );
  const [status, setStatus] = useState("");
  const { data: deliveries, reload } = useLoad(
    () =>
      api<Page<Delivery>>(
        "GET",
        `/v1/account/webhook_endpoints/${id}/deliveries` + query({ limit: 100, status }),
      ),
    [id, status],
  );
  const [url, setUrl] = useState<string | null>(null);
  const [description, setDescription] = useState<string | null>(null);
  const [since, setSince] = useState("");
  const action = useAction();
  if (!endpoint) return <Alert message={error} />;
  const active = endpoint.info.status === "WEBHOOK_ENDPOINT_STATUS_ACTIVE";
  return (
    <>
      <h1>Webhook endpoint</h1>
      <p>
        <code>{endpoint.spec.url}</code> <EndpointStatus endpoint={endpoint} />
      </p>
      <Alert message={action.error} />
      <Status message={action.notice} />
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          action.run(async () => {
            setData(
              await api<WebhookEndpoint>("PATCH", `/v1/account/webhook_endpoints/${id}`, {
                spec: {
                  url: url ?? endpoint.spec.url,
                  description: description ?? endpoint.spec.description,
                },
              }),
            );
          }, "The endpoint was saved.");
        }}
      >
        <h2>Edit</h2>
        <label>
          URL
          <input required value={url ?? endpoint.spec.url} onInput={(event) => setUrl(value(event))} />
        </label>
        <label>
          Description
          <input
            value={description ?? endpoint.spec.description}
            onInput={(event) => setDescription(value(event))}
          />
        </label>
        <div class="row">
          <button type="submit" class="primary">
            Save
          </button>
          <button
            type="button"
            onClick={() =>
              action.run(async () => {
                setData(
                  await api<WebhookEndpoint>(
                    "POST",
                    `/v1/account/webhook_endpoints/${id}:${active ? "disable" : "enable"}`,
                  ),
                );
              }, active ? "The endpoint was disabled." : "The endpoint was enabled.")
            }
          >
            {active ? "Disable" : "Enable"}
          </button>
          <button
            type="button"
            onClick={() =>
              action.run(async () => {
                await api("POST", `/v1/account/webhook_endpoints/${id}:sendTest`);
                reload();
              }, "A test event was queued.")
            }
          >
            Send test event
          </button>
        </div>
      </form>
      <form
        class="row"
        onSubmit={(event) => {
          event.preventDefault();
          action.run(async () => {
            const result = await api<{ requeued: number }>(
              "POST",
              `/v1/account/webhook_endpoints/${id}:recover`,
              { since: new Date(since).toISOString() },
            );
            reload();
            action.setNotice(`${result.requeued} failed deliveries were queued again.`);
          });
        }}
      >
        <label>
          Recover failed deliveries since
          <input type="datetime-local" required value={since} onInput={(event) => setSince(value(event))} />
        </label>
        <button type="submit">Recover</button>
      </form>
      <h2>Deliveries</h2>
      <div class="row">
        <label>
          Status
          <select value={status} onChange={(event) => setStatus(value(event))}>
            <option value="">Any</option>
            {Object.entries(DELIVERY_STATUS).map(([key, label]) => (
              <option key={key} value={key}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      <div class="table" tabIndex={0} role="region" aria-label="Deliveries">
        <table>
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Response</th>
              <th scope="col">Last attempt</th>
              <th scope="col">Action</th>
            </tr>
          </thead>
          <tbody>
            {deliveries?.items.map((delivery) => (
              <tr key={delivery.metadata.id} data-status={delivery.data.status}>
                <td>{delivery.data.eventType}</td>
                <td>{DELIVERY_STATUS[delivery.data.status] ?? delivery.data.status}</td>
                <td>{delivery.data.attemptCount}</td>
                <td>
                  {delivery.data.httpStatusCode || ""} {delivery.data.errorMessage}
                </td>
                <td>{when(delivery.data.lastAttemptAt)}</td>
                <td>
                  {delivery.data.status !== "WEBHOOK_DELIVERY_STATUS_COMPLETED" && (
                    <button
                      type="button"
                      onClick={() =>
                        action.run(async () => {
                          await api(
                            "POST",
                            `/v1/account/webhook_endpoints/${id}/deliveries/${delivery.metadata.id}:retry`,
                          );
                          reload();
                        }, "The delivery was queued again.")
                      }
                    >
                      Retry
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

// --- SSO and SCIM ------------------------------------------------------------------------

export function SsoPage() {
  const { data, error, reload } = useLoad(
    () => api<Page<SsoConnection>>("GET", "/v1/account/sso_connections?limit=1000"),
    [],
  );
  const keys = useLoad(() => api<Page<ApiKey>>("GET", "/v1/account/api_keys?limit=1000"), []);
  const [form, setForm] = useState({
    name: "",
    issuer: "",
    clientId: "",
    clientSecret: "",
    domains: "",
    claim: "groups",
    adminValues: "",
    createProfiles: false,
  });
  const [created, setCreated] = useState<ApiKey | null>(null);
  const action = useAction();
  const field = (name: keyof typeof form) => (event: Event) =>
    setForm({ ...form, [name]: value(event) });
  const list = (text: string) => text.split(",").map((item) => item.trim()).filter(Boolean);
  const scimKeys = keys.data?.items.filter((key) => key.spec.permissions.includes("scim:manage"));
  return (
    <>
      <h1>SSO and SCIM</h1>
      <Alert message={error || action.error} />
      <Status message={action.notice} />
      <h2>SSO connections</h2>
      <ul class="cards" aria-label="SSO connections">
        {data?.items.map((connection) => (
          <li key={connection.metadata.id}>
            <strong>{connection.metadata.name}</strong>
            <span class="muted">
              {connection.spec.issuer} · client {connection.spec.clientId} · domains{" "}
              {connection.spec.allowedEmailDomains.join(", ") || "—"} · callback{" "}
              <code>{connection.info.callbackUrl}</code>
            </span>
            <ConfirmButton
              label="Delete…"
              question="Delete this connection? No one signs in through it any more."
              confirm="Delete"
              danger
              onConfirm={() =>
                action.run(async () => {
                  await api("DELETE", `/v1/account/sso_connections/${connection.metadata.id}`);
                  reload();
                }, "The connection was deleted.")
              }
            />
          </li>
        ))}
      </ul>
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          action.run(async () => {
            await api("POST", "/v1/account/sso_connections", {
              metadata: { name: form.name },
              spec: {
                issuer: form.issuer,
                clientId: form.clientId,
                clientSecret: form.clientSecret,
                allowedEmailDomains: list(form.domains),
                roleMapping: { claim: form.claim, adminValues: list(form.adminValues) },
                createProfiles: form.createProfiles,
              },
            });
            reload();
          }, "The connection was created.");
        }}
      >
        <h3>New connection</h3>
        <label>
          Name
          <input required value={form.name} onInput={field("name")} />
        </label>
        <label>
          Issuer URL
          <input required type="url" value={form.issuer} onInput={field("issuer")} />
        </label>
        <label>
          Client id
          <input required value={form.clientId} onInput={field("clientId")} />
        </label>
        <label>
          Client secret
          <input required type="password" autoComplete="off" value={form.clientSecret} onInput={field("clientSecret")} />
        </label>
        <label>
          Allowed email domains (comma-separated)
          <input value={form.domains} onInput={field("domains")} />
        </label>
        <label>
          Role claim
          <input value={form.claim} onInput={field("claim")} />
        </label>
        <label>
          Values that make an administrator (comma-separated)
          <input value={form.adminValues} onInput={field("adminValues")} />
        </label>
        <label class="inline">
          <input
            type="checkbox"
            checked={form.createProfiles}
            onChange={() => setForm({ ...form, createProfiles: !form.createProfiles })}
          />{" "}
          Create a profile at a person's first sign-in
        </label>
        <button type="submit" class="primary">
          Connect
        </button>
      </form>
      <h2>SCIM keys</h2>
      <p>
        Identity providers provision people at <code>/scim/v2</code> with an API key holding{" "}
        <code>scim:manage</code>.
      </p>
      {created && <TokenOnce token={created.spec.token} what={created.metadata.name} />}
      <ul class="cards" aria-label="SCIM keys">
        {scimKeys?.map((key) => (
          <KeyRow key={key.metadata.id} apiKey={key} onChange={keys.reload} />
        ))}
      </ul>
      <KeyForm
        title="New SCIM key"
        scopes={["scim:manage"]}
        onCreated={(key) => {
          setCreated(key);
          keys.reload();
        }}
      />
    </>
  );
}

// --- Audit -------------------------------------------------------------------------------

export function AuditPage({ search }: { search: URLSearchParams }) {
  const [action, setAction] = useState(search.get("action") ?? "");
  const [actor, setActor] = useState(search.get("actor") ?? "");
  const [applied, setApplied] = useState({ action, actor });
  const [more, setMore] = useState<AuditEvent[]>([]);
  const [cursor, setCursor] = useState("");
  const loading = useAction();
  const { data, error } = useLoad(async () => {
    const page = await api<Page<AuditEvent>>(
      "GET",
      "/v1/account/audit_events" +
        query({ action: applied.action, actorProfileId: applied.actor, limit: 50 }),
    );
    setMore([]);
    setCursor(page.pagination.nextCursor);
    return page;
  }, [applied]);
  const events = [...(data?.items ?? []), ...more];
  return (
    <>
      <h1>Audit log</h1>
      <form
        class="row"
        onSubmit={(event) => {
          event.preventDefault();
          setApplied({ action: action.trim(), actor: actor.trim() });
        }}
      >
        <label>
          Action
          <input placeholder="workspace.create" value={action} onInput={(event) => setAction(value(event))} />
        </label>
        <label>
          Actor profile id
          <input placeholder="profile_…" value={actor} onInput={(event) => setActor(value(event))} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Alert message={error || loading.error} />
      <p class="count">{data ? `${data.pagination.total} events` : ""}</p>
      <div class="table" tabIndex={0} role="region" aria-label="Audit events">
        <table>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Actor</th>
              <th scope="col">Resource</th>
              <th scope="col">Request</th>
            </tr>
          </thead>
          <tbody>
            {events.map((event) => (
              <tr key={event.id}>
                <td>{when(event.createdAt)}</td>
                <td>
                  <Highlight text={event.action} needle={applied.action} />
                </td>
                <td>
                  {event.actorProfileId ? (
                    <Link to={`/profiles/${event.actorProfileId}`}>{event.actorProfileId}</Link>
                  ) : (
                    "—"
                  )}
                  {event.apiKeyId && <span class="muted"> with {event.apiKeyId}</span>}
                </td>
                <td>
                  <code>{event.resourceId}</code>
                </td>
                <td>
                  <code>{event.requestId}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {cursor && (
        <button
          type="button"
          disabled={loading.busy}
          onClick={() =>
            loading.run(async () => {
              const page = await api<Page<AuditEvent>>(
                "GET",
                "/v1/account/audit_events" +
                  query({ action: applied.action, actorProfileId: applied.actor, limit: 50, cursor }),
              );
              setMore((previous) => [...previous, ...page.items]);
              setCursor(page.pagination.nextCursor);
            })
          }
        >
          Older events
        </button>
      )}
    </>
  );
}
