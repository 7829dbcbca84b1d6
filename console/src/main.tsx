// The console: sign-in (SSO or a pasted API key), then the pages of the account.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, errorText, query, setCsrfToken, type Session } from "./api";
import {
  AccountPage,
  ApiKeysPage,
  AuditPage,
  ProfilePage,
  ProfilesPage,
  SsoPage,
  WebhookEndpointPage,
  WebhooksPage,
  WorkspacePage,
  WorkspacesPage,
} from "./pages";
import { navigate, useLocation } from "./router";
import { Alert, Link } from "./ui";
import "./style.css";

const ADMIN_PAGES: [string, string][] = [
  ["/", "Account"],
  ["/profiles", "Profiles"],
  ["/workspaces", "Workspaces"],
  ["/api_keys", "API keys"],
  ["/webhooks", "Webhooks"],
  ["/sso", "SSO and SCIM"],
  ["/audit", "Audit log"],
];
const MEMBER_PAGES: [string, string][] = [
  ["/", "Account"],
  ["/workspaces", "Workspaces"],
];

function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [email, setEmail] = useState("");
  const [key, setKey] = useState("");
  const [error, setError] = useState("");
  return (
    <main id="main" class="sign-in">
      <h1>Cadenya console</h1>
      <Alert message={error} />
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          const who = email.trim();
          // The server redirects to the identity provider, which sends the browser back here.
          const target = who.startsWith("ssoconn_") ? { connection: who } : { email: who };
          location.assign("/auth/sso/start" + query({ ...target, returnTo: "/console" }));
        }}
      >
        <h2>Sign in with your identity provider</h2>
        <label>
          Work email (or an SSO connection id)
          <input
            type="text"
            name="email"
            autoComplete="email"
            required
            value={email}
            onInput={(event) => setEmail((event.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="primary">
          Continue with SSO
        </button>
      </form>
      <form
        class="card"
        onSubmit={async (event) => {
          event.preventDefault();
          try {
            const session = await api<Session>("POST", "/auth/api_key", { apiKey: key.trim() });
            setKey("");
            onSignedIn(session);
          } catch (failure) {
            setError(errorText(failure));
          }
        }}
      >
        <h2>Sign in with an API key</h2>
        <p class="muted">
          The key is exchanged for a session and not kept in this browser. The session ends when
          the key is disabled, rotated or deleted.
        </p>
        <label>
          API key
          <input
            type="password"
            name="api-key"
            autoComplete="off"
            required
            value={key}
            onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="primary">
          Sign in with the key
        </button>
      </form>
    </main>
  );
}

function Console({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { path, search } = useLocation();
  const admin = session.permissions.includes("*") || session.permissions.includes("account:manage");
  const pages = admin ? ADMIN_PAGES : MEMBER_PAGES;
  const [error, setError] = useState("");
  const [, section, id] = path.split("/");
  let page;
  if (path === "/") page = <AccountPage admin={admin} />;
  else if (section === "profiles" && id) page = <ProfilePage id={id} admin={admin} />;
  else if (section === "profiles") page = <ProfilesPage />;
  else if (section === "workspaces" && id) page = <WorkspacePage id={id} admin={admin} />;
  else if (section === "workspaces") page = <WorkspacesPage admin={admin} />;
  else if (section === "api_keys") page = <ApiKeysPage />;
  else if (section === "webhooks" && id) page = <WebhookEndpointPage id={id} />;
  else if (section === "webhooks") page = <WebhooksPage />;
  else if (section === "sso") page = <SsoPage />;
  else if (section === "audit") page = <AuditPage search={search} />;
  else page = <h1>Not found</h1>;
  useEffect(() => {
    const title = pages.find(([to]) => to === "/" + (section ?? ""))?.[1] ?? "Console";
    document.title = `${title} · Cadenya console`;
  }, [path]);
  const who = session.profile.spec.name || session.profile.spec.email || session.profile.metadata.name;
  return (
    <>
      <a class="skip" href="#main">
        Skip to the page
      </a>
      <header>
        <span class="brand">Cadenya</span>
        <nav aria-label="Console">
          <ul>
            {pages.map(([to, label]) => {
              const current = to === "/" ? path === "/" : path.startsWith(to);
              return (
                <li key={to}>
                  <Link to={to} current={current}>
                    {label}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <span class="who">
          {who} ({admin ? "administrator" : session.permissions.join(", ") || "member"}){" "}
          <button
            type="button"
            onClick={async () => {
              try {
                await api("POST", "/auth/logout");
                onSignOut();
              } catch (failure) {
                setError(errorText(failure));
              }
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main id="main" key={path}>
        <Alert message={error} />
        {page}
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState("");
  useEffect(() => {
    api<Session>("GET", "/auth/session").then(
      (found) => {
        setCsrfToken(found.csrfToken);
        setSession(found);
      },
      (failure) => {
        if (failure instanceof ApiError && failure.status === 401) setSession(null);
        else setError(errorText(failure));
      },
    );
  }, []);
  if (error) return <Alert message={error} />;
  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null) {
    return (
      <SignIn
        onSignedIn={(started) => {
          setCsrfToken(started.csrfToken);
          setSession(started);
        }}
      />
    );
  }
  return (
    <Console
      session={session}
      onSignOut={() => {
        setCsrfToken("");
        setSession(null);
        navigate("/");
      }}
    />
  );
}

render(<App />, document.getElementById("app")!);
