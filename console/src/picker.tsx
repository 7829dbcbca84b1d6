// The member picker: the profile search as you type, on the ARIA combobox pattern.
//
// - A short debounce (DEBOUNCE_MS) after the last keystroke, then one request.
// - A newer search aborts the request in flight (AbortController), and a sequence number
//   keeps an older answer that arrives anyway from painting over a newer one.
// - The exact total from the first page; later pages follow the cursor as the list
//   scrolls (an IntersectionObserver on a sentinel below the last row).
// - Arrows move the active option (aria-activedescendant), Enter picks it, Escape
//   clears the search.
import { Component } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, query as queryString, type Page, type Profile } from "./api";
import { PROFILE_TYPES } from "./ui";

export const DEBOUNCE_MS = 80;
const PAGE_SIZE = 50;
let pickers = 0;

/** `text` with every case-insensitive occurrence of `needle` in <mark>. */
export function Highlight({ text, needle }: { text: string; needle: string }) {
  const lower = text.toLowerCase();
  const wanted = needle.toLowerCase();
  // Lower-casing that changes the length (rare scripts) would misplace the marks.
  if (!wanted || lower.length !== text.length) return <>{text}</>;
  const parts = [];
  let from = 0;
  for (let at = lower.indexOf(wanted); at >= 0; at = lower.indexOf(wanted, from)) {
    if (at > from) parts.push(text.slice(from, at));
    parts.push(<mark key={at}>{text.slice(at, at + wanted.length)}</mark>);
    from = at + wanted.length;
  }
  parts.push(text.slice(from));
  return <>{parts}</>;
}

type RowProps = {
  id: string;
  profile: Profile;
  needle: string;
  active: boolean;
  onPick: () => void;
};

/** One option. A row re-renders only when what it shows changes: appending a page of 50
 * to a list of hundreds renders the 50, not the whole list (bench/README.md: scrolling). */
class OptionRow extends Component<RowProps> {
  shouldComponentUpdate(next: RowProps): boolean {
    const now = this.props;
    return (
      next.profile !== now.profile ||
      next.needle !== now.needle ||
      next.active !== now.active ||
      next.id !== now.id
    );
  }

  render({ id, profile, needle, active, onPick }: RowProps) {
    return (
      <li
        id={id}
        role="option"
        aria-selected={active}
        class={active ? "option active" : "option"}
        onMouseDown={(event) => event.preventDefault()}
        onClick={() => onPick()}
      >
        <span class="option-name">
          <Highlight text={profile.spec.name || "(no name)"} needle={needle} />
        </span>
        <span class="option-email">
          <Highlight text={profile.spec.email} needle={needle} />
        </span>
        <span class="badges">
          <span class="badge">{PROFILE_TYPES[profile.spec.type] ?? profile.spec.type}</span>
          {profile.info.deactivated && <span class="badge warn">Deactivated</span>}
        </span>
      </li>
    );
  }
}

export function Picker(props: {
  label: string;
  onPick: (profile: Profile) => void;
  type?: string;
  showFilters?: boolean;
}) {
  const [id] = useState(() => `picker-${++pickers}`);
  const [needle, setNeedle] = useState("");
  const [type, setType] = useState(props.type ?? "");
  const [labels, setLabels] = useState("");
  const [items, setItems] = useState<Profile[]>([]);
  const [shownNeedle, setShownNeedle] = useState("");
  const [total, setTotal] = useState<number | null>(null);
  const [cursor, setCursor] = useState("");
  const [active, setActive] = useState(-1);
  const [error, setError] = useState("");
  const sequence = useRef(0);
  const inFlight = useRef<AbortController | null>(null);
  const loadingMore = useRef(false);
  const list = useRef<HTMLDivElement>(null);
  const sentinel = useRef<HTMLDivElement>(null);
  // The latest onPick: a row that did not re-render still calls the current one.
  const onPick = useRef(props.onPick);
  onPick.current = props.onPick;

  // What the list shows: later pages continue that search, whatever is typed since.
  const painted = useRef({ needle: "", type: "", labels: "" });
  const searching = useRef(false);

  async function load(fresh: boolean, after = ""): Promise<void> {
    // A new search outranks a next page: no page of the old list is fetched meanwhile.
    if (!fresh && (loadingMore.current || searching.current)) return;
    const wanted = fresh ? { needle, type, labels } : painted.current;
    inFlight.current?.abort();
    const controller = new AbortController();
    inFlight.current = controller;
    const mine = ++sequence.current;
    searching.current = fresh;
    loadingMore.current = !fresh;
    const url =
      "/v1/account/profiles" +
      queryString({
        query: wanted.needle,
        type: wanted.type,
        labels: wanted.labels,
        cursor: after,
        limit: PAGE_SIZE,
      });
    try {
      const page = await api<Page<Profile>>("GET", url, undefined, controller.signal);
      if (mine !== sequence.current) return; // a newer search owns the list now
      setError("");
      setItems((previous) => (fresh ? page.items : [...previous, ...page.items]));
      if (fresh) {
        painted.current = wanted;
        setShownNeedle(wanted.needle);
        setTotal(page.pagination.total);
        setActive(page.items.length ? 0 : -1);
        list.current?.scrollTo?.(0, 0);
      }
      setCursor(page.pagination.nextCursor);
    } catch (failure) {
      if (controller.signal.aborted || mine !== sequence.current) return;
      setError(errorText(failure));
    } finally {
      if (mine === sequence.current) {
        searching.current = false;
        loadingMore.current = false;
      }
    }
  }

  useEffect(() => {
    const timer = setTimeout(() => load(true), DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [needle, type, labels]);

  useEffect(() => () => inFlight.current?.abort(), []);

  // The next page when the sentinel below the last row scrolls into view.
  useEffect(() => {
    const target = sentinel.current;
    if (!target || !cursor) return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) load(false, cursor);
      },
      { root: list.current, rootMargin: "200px" },
    );
    observer.observe(target);
    return () => observer.disconnect();
  }, [cursor, items]);

  function move(to: number): void {
    if (!items.length) return;
    const next = Math.max(0, Math.min(items.length - 1, to));
    setActive(next);
    document.getElementById(`${id}-option-${next}`)?.scrollIntoView({ block: "nearest" });
    if (next >= items.length - 5 && cursor) load(false, cursor);
  }

  function onKeyDown(event: KeyboardEvent): void {
    switch (event.key) {
      case "ArrowDown":
        event.preventDefault();
        move(active + 1);
        break;
      case "ArrowUp":
        event.preventDefault();
        move(active - 1);
        break;
      case "Home":
        if (event.ctrlKey) {
          event.preventDefault();
          move(0);
        }
        break;
      case "End":
        if (event.ctrlKey) {
          event.preventDefault();
          move(items.length - 1);
        }
        break;
      case "Enter":
        if (active >= 0 && items[active]) {
          event.preventDefault();
          onPick.current(items[active]);
        }
        break;
      case "Escape":
        event.preventDefault();
        setNeedle("");
        break;
    }
  }

  const count =
    total === null ? "Searching…" : `${total.toLocaleString("en")} ${total === 1 ? "match" : "matches"}`;
  return (
    <div class="picker">
      <div class="picker-fields">
        <label for={`${id}-input`}>{props.label}</label>
        <input
          id={`${id}-input`}
          type="search"
          role="combobox"
          autoComplete="off"
          spellcheck={false}
          aria-autocomplete="list"
          aria-expanded={items.length > 0}
          aria-controls={`${id}-list`}
          aria-activedescendant={active >= 0 ? `${id}-option-${active}` : undefined}
          aria-describedby={`${id}-count`}
          placeholder="Name or email"
          value={needle}
          onInput={(event) => setNeedle((event.target as HTMLInputElement).value)}
          onKeyDown={onKeyDown}
        />
        {props.showFilters && (
          <div class="filters">
            <label>
              Type
              <select value={type} onChange={(event) => setType((event.target as HTMLSelectElement).value)}>
                <option value="">All types</option>
                <option value="PROFILE_TYPE_USER">Users</option>
                <option value="PROFILE_TYPE_API_KEY">API keys</option>
                <option value="PROFILE_TYPE_SYSTEM">System</option>
              </select>
            </label>
            <label>
              Labels
              <input
                type="text"
                placeholder="team=core,env=prod"
                value={labels}
                onChange={(event) => setLabels((event.target as HTMLInputElement).value)}
              />
            </label>
          </div>
        )}
      </div>
      <p id={`${id}-count`} class="count" aria-live="polite">
        {count}
      </p>
      <p role="alert" class={error ? "alert" : "alert empty"}>
        {error}
      </p>
      <div class="listbox" ref={list} tabIndex={0}>
      <ul
        id={`${id}-list`}
        role="listbox"
        aria-label={`${props.label}: results`}
        data-query={shownNeedle}
      >
        {items.map((profile, index) => (
          <OptionRow
            key={profile.metadata.id}
            id={`${id}-option-${index}`}
            profile={profile}
            needle={shownNeedle}
            active={index === active}
            onPick={() => {
              setActive(index);
              onPick.current(profile);
            }}
          />
        ))}
      </ul>
      {cursor && (
        <div ref={sentinel} class="sentinel">
          Loading more…
        </div>
      )}
      </div>
    </div>
  );
}
