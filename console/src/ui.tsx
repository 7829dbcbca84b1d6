// Small pieces every page uses: loading a resource, showing errors, confirming.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { errorText } from "./api";
import { BASE, onLink } from "./router";

export function Link(props: {
  to: string;
  children: ComponentChildren;
  class?: string;
  current?: boolean;
}) {
  return (
    <a
      href={BASE + (props.to === "/" ? "" : props.to)}
      onClick={onLink}
      class={props.class}
      aria-current={props.current ? "page" : undefined}
    >
      {props.children}
    </a>
  );
}

export function Alert({ message }: { message: string }) {
  // Always in the page, so that a screen reader announces what appears in it.
  return (
    <p role="alert" class={message ? "alert" : "alert empty"}>
      {message}
    </p>
  );
}

export function Status({ message }: { message: string }) {
  return (
    <p role="status" class={message ? "notice" : "notice empty"}>
      {message}
    </p>
  );
}

/** Loads with `load` (again when `deps` change or `reload()` is called). */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let current = true;
    setError("");
    load().then(
      (value) => current && setData(value),
      (failure) => current && setError(errorText(failure)),
    );
    return () => {
      current = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, reload, setData };
}

/** Runs an action, reporting its error (or its success) to the page. */
export function useAction() {
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  const run = async (action: () => Promise<unknown>, done?: string) => {
    setError("");
    setNotice("");
    setBusy(true);
    try {
      await action();
      if (done) setNotice(done);
      return true;
    } catch (failure) {
      setError(errorText(failure));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { error, notice, busy, run, setError, setNotice };
}

/** A button that asks once more, in the page, before it acts. */
export function ConfirmButton(props: {
  label: string;
  question: string;
  confirm: string;
  onConfirm: () => void;
  danger?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" class={props.danger ? "danger" : ""} onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  }
  return (
    <span class="confirm" role="group" aria-label={props.question}>
      <span>{props.question}</span>
      <button
        type="button"
        class={props.danger ? "danger" : "primary"}
        ref={(element) => element?.focus()}
        onClick={() => {
          setAsking(false);
          props.onConfirm();
        }}
      >
        {props.confirm}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState("");
  return (
    <>
      <button
        type="button"
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(text);
            setCopied("Copied to the clipboard");
          } catch {
            setCopied("Could not copy: select the text and copy it");
          }
        }}
      >
        {label}
      </button>
      <span role="status" class="copied">
        {copied}
      </span>
    </>
  );
}

export function when(timestamp: string): string {
  return timestamp ? timestamp.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "—";
}

export const PROFILE_TYPES: Record<string, string> = {
  PROFILE_TYPE_USER: "User",
  PROFILE_TYPE_API_KEY: "API key",
  PROFILE_TYPE_SYSTEM: "System",
  PROFILE_TYPE_UNSPECIFIED: "Unspecified",
};
