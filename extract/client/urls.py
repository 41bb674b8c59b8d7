"""Host URLs as Ollama's own client reads ``OLLAMA_HOST``, and safe to print."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

import httpx

from ..errors import ConfigError

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
# Letters (any script: IDNA), digits, dots, hyphens, underscores; or an IPv6 literal.
_HOSTNAME = re.compile(r"[\w.-]+|[0-9A-Fa-f:.%]+")


def parse_host(host: str | None) -> str:
    """Turn an ``OLLAMA_HOST``-style value into a base URL, as Ollama's own client does.

    >>> parse_host(None)
    'http://127.0.0.1:11434'
    >>> parse_host("1.2.3.4")
    'http://1.2.3.4:11434'
    >>> parse_host(":5000")
    'http://127.0.0.1:5000'
    >>> parse_host("https://example.com")
    'https://example.com:443'
    >>> parse_host("http://example.com/ollama/")
    'http://example.com:80/ollama'
    >>> parse_host("0.0.0.0")
    'http://127.0.0.1:11434'
    >>> parse_host("[::1]:8000")
    'http://[::1]:8000'
    >>> parse_host("::1")
    'http://[::1]:11434'
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_HOST
    shown = redact(host) if "@" in host else host
    try:
        url = _parse_host(host, shown)
        httpx.URL(url)  # what the client will do with it; refuse here, with a clear message
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"host {shown!r} is not a usable URL ({exc})") from None
    return url


def _parse_host(host: str, shown: str) -> str:
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest = "http", host
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"host {shown!r}: the scheme must be http or https")
    default_port = DEFAULT_PORT if not sep else (443 if scheme == "https" else 80)

    netloc, slash, path = rest.partition("/")
    hostname, port = _split_host_port(netloc, shown)
    if not _HOSTNAME.fullmatch(hostname.strip("[]")) and hostname:
        raise ConfigError(f"host {shown!r}: not a host name")
    if not hostname or hostname == "0.0.0.0":
        hostname = "127.0.0.1"
    elif hostname == "::":
        hostname = "::1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    path = f"/{path}".rstrip("/") if slash else ""
    return f"{scheme}://{hostname}:{port or default_port}{path}"


def _split_host_port(netloc: str, original: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        inside, bracket, after = netloc[1:].partition("]")
        if not bracket:
            raise ConfigError(f"host {original!r}: unclosed '[' in an IPv6 address")
        hostname, port_text = inside, after.removeprefix(":") if after else ""
        if after and not after.startswith(":"):
            raise ConfigError(f"host {original!r}: unexpected text after the IPv6 address")
    elif netloc.count(":") > 1:
        try:
            ipaddress.IPv6Address(netloc)
        except ValueError:
            raise ConfigError(f"host {original!r}: not an IPv6 address; bracket it") from None
        return netloc, None
    else:
        hostname, _, port_text = netloc.partition(":")
    if not port_text:
        return hostname, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConfigError(f"host {original!r}: the port must be a number from 1 to 65535")
    return hostname, int(port_text)


def redact(url: str) -> str:
    """A URL safe to print: any user:password part removed.

    >>> redact("http://user:secret@h:80/x")
    'http://h:80/x'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.rpartition("@")[2] if "@" in url else url
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
