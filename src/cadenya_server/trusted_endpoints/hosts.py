"""Trusted endpoint hosts: what is accepted, its one normal form, and how a URL matches.

A host is a DNS name or an IP literal, optionally followed by `:port`:

- A DNS name: labels of letters, digits and hyphens (1-63 characters, no
  hyphen at either end), at most 253 characters, with at most one trailing
  dot, which is dropped. Unicode names are mapped as browsers and httpx map
  them (UTS #46, non-transitional) and stored as IDNA A-labels, so
  `Bücher.example` and `xn--bcher-kva.example` are one host. A name whose
  last label is a number (`1.2.3`, `0x7f`) is refused: URL parsers read it as
  an IPv4 address.
- An IPv4 address: four decimal numbers 0-255 without leading zeros.
- An IPv6 address in brackets, stored compressed: `[2001:DB8:0::1]` is
  `[2001:db8::1]`. Zone ids are refused.
- A port: 1-65535 in decimal, without leading zeros. A port is never implied
  or dropped: `example.com:443` stays as written.

Everything is lower-cased. Refused: surrounding whitespace, a scheme, user
info, a path, query or fragment, wildcards, percent-escapes and underscores.

A URL is trusted when an endpoint has its host and either names the URL's
port, or names no port while the URL uses its scheme's default port (80 for
http, 443 for https): `api.example.com` trusts `https://api.example.com/x`
and `https://api.example.com:443/x`, not `https://api.example.com:8443/x`.
The host is read as WHATWG URL parsers read it: after the last `@` of the
authority, which ends at the first `/`, `\\`, `?` or `#`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

import idna

_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# The WHATWG URL standard's "ends in a number": such names parse as IPv4.
_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_AUTHORITY_ENDS = "/\\?#"
_REFUSED = (
    ("@", "user info"),
    ("/", "a path"),
    ("\\", "a path"),
    ("?", "a query"),
    ("#", "a fragment"),
    ("*", "wildcards"),
    ("%", "percent-escapes"),
)
MAX_NAME = 253

# For the OpenAPI document: a part of what parse_host and parse_url accept (ASCII names
# and IPv4 addresses), so that every host and URL it describes is accepted.
_DOC_LABEL = r"(?![xX][nN]--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOC_LAST_LABEL = r"(?![xX][nN]--)[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_DOC_PORT = (
    r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
_DOC_NAME = (
    rf"(?:(?=[^:/?#]{{1,{MAX_NAME}}}(?:[:/?#]|$))(?:{_DOC_LABEL}\.)*{_DOC_LAST_LABEL}"
    rf"|{_DOC_OCTET}(?:\.{_DOC_OCTET}){{3}})(?::{_DOC_PORT})?"
)
_DOC_URL_REST = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
HOST_PATTERN = rf"^{_DOC_NAME}$"
URL_PATTERN = rf"^[hH][tT][tT][pP][sS]?://{_DOC_NAME}(?:[/?#]{_DOC_URL_REST}*)?$"
DEFAULT_PORTS = {"http": 80, "https": 443}


class HostError(ValueError):
    """Text that is not an acceptable host or URL; the message says why."""


@dataclass(frozen=True)
class Host:
    """A normalised host: `name` is an A-label name, an IPv4 address or `[IPv6]`."""

    name: str
    port: int | None = None

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


def _has_space_or_control(text: str) -> bool:
    return any(c.isspace() or unicodedata.category(c) == "Cc" for c in text)


def parse_host(text: str) -> Host:
    """`host[:port]` in its normal form; HostError if it is not acceptable."""
    if not text:
        raise HostError("must not be empty")
    if text != text.strip():
        raise HostError("must not start or end with whitespace")
    if _has_space_or_control(text):
        raise HostError("must not contain whitespace or control characters")
    if "://" in text:
        raise HostError("give the host alone, without a scheme such as https://")
    for character, what in _REFUSED:
        if character in text:
            raise HostError(f"must not contain {what} ({character!r})")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HostError("an IPv6 address needs its closing bracket")
        name, rest = _ipv6(text[1:end]), text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HostError("only :port may follow an IPv6 address")
        return Host(name, _port(rest[1:]) if rest else None)
    head, colon, tail = text.partition(":")
    if ":" in tail:
        raise HostError("an IPv6 address must be in brackets, e.g. [2001:db8::1]")
    return Host(_name(head), _port(tail) if colon else None)


def normalize(text: str) -> str:
    """The stored form of a trusted endpoint's host."""
    return str(parse_host(text))


def _port(text: str) -> int:
    if not _PORT.fullmatch(text) or int(text) > 65535:
        raise HostError("a port must be a number from 1 to 65535 without leading zeros")
    return int(text)


def _ipv6(text: str) -> str:
    try:
        return f"[{ipaddress.IPv6Address(text).compressed}]"
    except ValueError as exc:
        raise HostError(f"not an IPv6 address: {text!r}") from exc


def _name(text: str) -> str:
    try:
        # Lower-cases and folds width and the ideographic full stop, as browsers do.
        mapped = idna.uts46_remap(text, std3_rules=True, transitional=False)
    except idna.IDNAError as exc:
        raise HostError(f"not a host name: {exc}") from exc
    mapped = mapped.removesuffix(".")
    if not mapped or mapped.startswith(".") or mapped.endswith(".") or ".." in mapped:
        raise HostError("a host name must not have empty labels")
    if _DIGITS_AND_DOTS.fullmatch(mapped):
        try:
            return str(ipaddress.IPv4Address(mapped))
        except ValueError as exc:
            raise HostError(
                "not an IPv4 address: use four numbers 0-255 without leading zeros"
            ) from exc
    labels = [_label(label) for label in mapped.split(".")]
    if _NUMBER.fullmatch(labels[-1]):
        raise HostError("a host name must not end in a number; URL parsers read it as IPv4")
    name = ".".join(labels)
    if len(name) > MAX_NAME:
        raise HostError(f"a host name has at most {MAX_NAME} characters")
    return name


def _label(label: str) -> str:
    if label.isascii() and not label.startswith("xn--"):
        if not _LDH_LABEL.fullmatch(label):
            raise HostError(
                f"{label!r} is not a host name label: letters, digits and inner hyphens, at most 63"
            )
        return label
    try:
        # Through Unicode and back, so every spelling of an A-label is the canonical one.
        return idna.alabel(idna.ulabel(label)).decode("ascii")
    except idna.IDNAError as exc:
        raise HostError(f"{label!r} is not a valid internationalised label: {exc}") from exc


@dataclass(frozen=True)
class UrlHost:
    """The host a URL points at; `host.port` is None when the URL names no port."""

    host: Host
    default_port: int

    @property
    def port(self) -> int:
        return self.host.port or self.default_port

    def canonical(self) -> str:
        """The host as an endpoint that trusts this URL would be written."""
        return str(Host(self.host.name, None if self.port == self.default_port else self.port))

    def endpoints(self) -> list[str]:
        """The stored hosts that trust this URL, the most specific first."""
        exact = str(Host(self.host.name, self.port))
        return [exact, self.host.name] if self.port == self.default_port else [exact]


@dataclass(frozen=True)
class TemplatedHost:
    """A URL whose host is known only once its templates are resolved."""

    text: str


def _authority_end(url: str, start: int) -> int:
    """Where the authority that starts at `start` ends; a template is skipped whole."""
    i = start
    while i < len(url):
        if url.startswith("{{", i):
            close = url.find("}}", i + 2)
            if close >= 0:
                i = close + 2
                continue
        if url[i] in _AUTHORITY_ENDS:
            return i
        i += 1
    return len(url)


def parse_url(url: str) -> UrlHost | TemplatedHost:
    """The host an absolute http(s) URL points at; HostError for anything else."""
    if url != url.strip() or _has_space_or_control(url):
        raise HostError("must not contain whitespace or control characters")
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    end = _authority_end(url, start)
    # A template anywhere before the path, user info included, may resolve to
    # text that moves the host (`{{secret}}` = `x@elsewhere/`).
    if _TEMPLATE.search(url, 0, end):
        return TemplatedHost(url[start:end].rpartition("@")[2])
    if scheme is None:
        raise HostError("must be an absolute URL such as https://api.example.com/path")
    default_port = DEFAULT_PORTS.get(scheme.group(1).lower())
    if default_port is None:
        raise HostError("only http and https URLs can be verified")
    host = url[start:end].rpartition("@")[2]
    if not host:
        raise HostError("the URL names no host")
    return UrlHost(parse_host(host), default_port)
