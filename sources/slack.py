"""Chat from Slack (Web API through slack_sdk's WebClient): ``chat: [{kind: slack, channels: [...]}]``.

By default the entry uses the product's own Slack settings from the environment —
SLACK_BOT_TOKEN and SLACK_API_URL — so the bot that posts reports also reads the incident
channels it was invited to. ``chat.search`` reads each configured channel's history in the window
(``conversations.history``, newest first, paging by cursor) with its threads
(``conversations.replies``), then keeps the messages whose text holds the caller's text. With
``use_search: true`` it asks ``search.messages`` instead, which finds older threads too but needs
a *user* token (``xoxp-``): Slack refuses bot tokens there.

Slack's JSON stays in this module: messages become ``{ts, channel: "#name", user, text,
thread_ts?}`` with ISO-8601 UTC times. A channel that cannot be read (the bot is not in it,
Slack rate-limits it) is named in the result's ``missing_sources`` while the others still answer.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs, urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.args import opt_str, opt_time
from sources.base import Provider, iso
from sources.errors import SourceError
from store.errors import ConfigError

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_MAX_MESSAGES = 1000
#: Slack's largest page for conversations.history / replies / list (it advises 200 or fewer).
PAGE_SIZE = 200
#: search.messages' largest page.
SEARCH_PAGE_SIZE = 100
#: conversations.list pages walked at most to find the configured channels (200 channels each).
MAX_LIST_PAGES = 50
#: users.info look-ups at most per call (the rest keep their user id).
MAX_USER_LOOKUPS = 100
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
#: Errors that mean the token itself is wrong: every channel would fail the same way.
_AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                          "no_permission", "org_login_required", "ekm_access_denied"})
#: Message subtypes that are housekeeping, not conversation.
_NOISE = frozenset({"channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name",
                    "channel_archive", "channel_unarchive", "group_join", "group_leave", "bot_add", "bot_remove",
                    "pinned_item", "unpinned_item"})


class _ChannelFailed(Exception):
    """One channel could not be read; the others still can (``message`` says what to do)."""


class _MissingScope(SourceError):
    """The token lacks a scope the method needs (the message names it)."""


@dataclass
class _Budget:
    """One ``chat.search`` call's bounds: its deadline (monotonic seconds) and users.info look-ups so far."""

    deadline: float
    lookups: int = 0

    def late(self) -> bool:
        """Whether the call has used its time: stop reading and say so."""
        return time.monotonic() >= self.deadline


class SlackProvider(Provider):
    """``chat: [{kind: slack, channels: ["#incidents", C0123456789]}]``.

    Settings: ``channels`` (names with ``#`` or ids; required unless ``use_search``), ``token``
    (a reference such as ``{env: SLACK_USER_TOKEN}``; default the SLACK_BOT_TOKEN variable), ``url``
    (default SLACK_API_URL, else https://slack.com/api/), ``use_search`` (default false),
    ``replies`` (read threads; default true), ``resolve_users`` (user ids -> names; default true),
    ``max_messages`` (most messages read per channel per call; default 1000), ``max_retry_wait_s``
    (longest Retry-After waited out once; default 5), ``timeout_s``.

    Raises:
        ConfigError: no token, no channels, or a malformed setting (named).
    """

    KIND = "slack"
    CAPABILITIES = ("chat.search",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.use_search = self._opt_bool("use_search", False)
        self.replies = self._opt_bool("replies", True)
        self.resolve_users = self._opt_bool("resolve_users", True)
        self.max_messages = self.opt_int("max_messages", DEFAULT_MAX_MESSAGES)
        self.max_retry_wait_s = self.opt_float("max_retry_wait_s", 5.0)
        if self.settings.get("token") is not None:
            token = self.secret("token")
            self.token_name = f"the token of {self.where}.token"
        else:
            token = os.environ.get("SLACK_BOT_TOKEN")
            self.token_name = "SLACK_BOT_TOKEN"
        if not token:
            raise ConfigError(f"{self.where}.token: no Slack token; export SLACK_BOT_TOKEN or set "
                              "token: {env: VARIABLE}")
        channels = self.opt("channels") or []
        if isinstance(channels, str):
            channels = [channels]
        if not isinstance(channels, list) or not all(isinstance(c, str) and c.strip("# ") for c in channels):
            raise ConfigError(f'{self.where}.channels: expected a list of channel names or ids, e.g. ["#incidents"]')
        if not channels and not self.use_search:
            raise ConfigError(f'{self.where}.channels: required (the channels to read), e.g. channels: ["#incidents"]; '
                              "or use_search: true with a user token")
        self.channels: list[str] = [c.strip() for c in channels]
        base = self.opt_str("url") or os.environ.get("SLACK_API_URL") or DEFAULT_API_URL
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"{self.where}.url: {base!r} is not an http(s) URL; e.g. {DEFAULT_API_URL}")
        self.base = base if base.endswith("/") else base + "/"
        # No retry handlers: a 429 is waited out here, once and only when short, so every call stays bounded.
        self.client = WebClient(token=token, base_url=self.base, timeout=self.timeout_s,  # type: ignore[arg-type]
                                retry_handlers=[])
        self._resolved: dict[str, tuple[str, str]] = {}
        self._users: dict[str, str] = {}
        self._why: dict[str, str] = {}

    def _opt_bool(self, key: str, default: bool) -> bool:
        value = self.settings.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}.{key}: expected true or false, got {value!r}")
        return value

    @property
    def label(self) -> str:
        name = self.entry.name if self.entry.name != self.entry.kind else "slack"
        return f"{name} {self.base}"

    # ------------------------------------------------------------ calling Slack

    def _api(self, method: str, *, about: str | None = None, **args: Any) -> dict[str, Any]:
        """Call one Web API method; a short Retry-After is waited out once.

        Args:
            method: e.g. ``conversations.history``.
            about: the channel name this call reads, when a failure concerns that channel only.
            **args: the method's arguments.

        Raises:
            SourceError: the token is refused, Slack is unreachable, slow or answers garbage.
            _ChannelFailed: an error that concerns channel ``about`` only (not_in_channel, rate limited, ...).
        """
        where = (about if _CHANNEL_ID.match(about) else "#" + about.lstrip("#")) if about else None
        for attempt in (0, 1):
            try:
                resp = getattr(self.client, method.replace(".", "_"))(**args)
                data = resp.data
                if not isinstance(data, dict):
                    raise SourceError(f"{self.label}: {method} answered no JSON object; check SLACK_API_URL / "
                                      f"{self.where}.url")
                return data
            except SlackApiError as exc:
                status = getattr(exc.response, "status_code", None)
                error = str(exc.response.get("error") or "") if exc.response is not None else ""
                if status == 429 or error == "ratelimited":
                    after = _retry_after(exc.response)
                    if attempt == 0 and after <= min(self.max_retry_wait_s, self.timeout_s):
                        time.sleep(after)
                        continue
                    raise self._failure(method, where, f"rate limited by Slack; retry after {after:g} s") from None
                raise self._slack_error(method, where, error, status, exc) from None
            except TimeoutError:
                raise SourceError(f"{self.label}: {method} timed out after {self.timeout_s:g} s; raise "
                                  f"{self.where}.timeout_s or check that Slack answers") from None
            except URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    raise SourceError(f"{self.label}: {method} timed out after {self.timeout_s:g} s; raise "
                                      f"{self.where}.timeout_s or check that Slack answers") from None
                raise SourceError(f"{self.label}: cannot connect ({str(exc.reason)[:120]}); check SLACK_API_URL / "
                                  f"{self.where}.url") from None
            except OSError as exc:
                raise SourceError(f"{self.label}: cannot connect ({type(exc).__name__}: {str(exc)[:120]}); check "
                                  f"SLACK_API_URL / {self.where}.url") from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _failure(self, method: str, where: str | None, what: str) -> Exception:
        if where:
            return _ChannelFailed(f"{self.label}: cannot read {where}: {what}")
        return SourceError(f"{self.label}: {method}: {what}")

    def _slack_error(self, method: str, where: str | None, error: str, status: Any, exc: SlackApiError) -> Exception:
        if error in _AUTH_ERRORS:
            return SourceError(f"{self.label}: {method}: Slack refused the token ({error}); check {self.token_name}")
        if error == "not_allowed_token_type":
            return SourceError(f"{self.label}: search.messages needs a user token (xoxp-), not a bot token; set "
                               f"{self.where}.token: {{env: SLACK_USER_TOKEN}} or use_search: false")
        if error == "missing_scope":
            needed = exc.response.get("needed") if exc.response is not None else None
            return _MissingScope(f"{self.label}: {method}: the token lacks the scope {needed or '?'}; add it to the "
                                 "Slack app and reinstall it")
        if error == "not_in_channel":
            return self._failure(method, where, f"the bot is not in it; invite the bot to {where} (/invite @bot)")
        if error == "channel_not_found":
            return self._failure(method, where, f"no such channel visible to the bot; check {self.where}.channels "
                                                "(private channels need the bot invited)")
        if error.startswith("Received a response in a non-JSON format"):
            return SourceError(f"{self.label}: {method} answered something that is not JSON (HTTP {status}); "
                               f"check SLACK_API_URL / {self.where}.url")
        if isinstance(status, int) and status >= 500:
            return self._failure(method, where, f"Slack answered HTTP {status} ({error}); try again later")
        return self._failure(method, where, f"Slack answered {error or f'HTTP {status}'}")

    def _late_note(self) -> str:
        return (f"stopped reading after {self.timeout_s:g} s (the call's time budget); raise {self.where}.timeout_s "
                "or narrow the window")

    # ------------------------------------------------------------ channels and users

    def _channels(self) -> tuple[list[tuple[str, str]], list[str]]:
        """The configured channels found, as ``(id, name)``, and those not found (as configured).

        Raises:
            SourceError: conversations.list failed (token, scope, unreachable).
        """
        wanted = [c for c in self.channels if c not in self._resolved]
        if wanted:
            by_id: dict[str, str] = {}
            cursor = None
            types = "public_channel,private_channel"
            for _ in range(MAX_LIST_PAGES):
                try:
                    page = self._api("conversations.list", types=types, exclude_archived=True, limit=PAGE_SIZE,
                                     cursor=cursor)
                except _MissingScope:
                    if types == "public_channel" or cursor:
                        raise
                    # A bot given channels:read but not groups:read still reads its public channels.
                    types = "public_channel"
                    continue
                for ch in page.get("channels") or []:
                    if isinstance(ch, dict) and ch.get("id") and ch.get("name"):
                        by_id[str(ch["id"])] = str(ch["name"])
                names = set(by_id.values())
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor or all(c in by_id or c.lstrip("#") in names for c in wanted):
                    break
            by_name = {name: cid for cid, name in by_id.items()}
            for c in wanted:
                if c in by_id:
                    self._resolved[c] = (c, by_id[c])
                elif c.lstrip("#") in by_name:
                    self._resolved[c] = (by_name[c.lstrip("#")], c.lstrip("#"))
                elif _CHANNEL_ID.match(c):
                    try:  # a private channel or DM the list did not show us
                        info = self._api("conversations.info", about=c, channel=c)
                    except _MissingScope:
                        self._why[c] = "the token lacks groups:read (needed for private channels); add it to the app"
                        continue
                    except _ChannelFailed:
                        continue
                    self._resolved[c] = (c, str((info.get("channel") or {}).get("name") or c))
        found = [self._resolved[c] for c in self.channels if c in self._resolved]
        return found, [c for c in self.channels if c not in self._resolved]

    def _not_found(self, channel: str) -> str:
        why = self._why.get(channel) or (f"no such channel visible to the bot; check {self.where}.channels (invite "
                                         "the bot to private channels)")
        return f"{self.label}: cannot read {channel}: {why}"

    def _user(self, raw: dict[str, Any], budget: _Budget) -> str | None:
        uid = raw.get("user")
        if not isinstance(uid, str) or not uid:
            profile = raw.get("bot_profile") or {}
            return raw.get("username") or (profile.get("name") if isinstance(profile, dict) else None) or raw.get("bot_id")
        if not self.resolve_users:
            return uid
        if uid not in self._users:
            if budget.lookups >= MAX_USER_LOOKUPS or budget.late():
                return uid
            budget.lookups += 1
            try:
                user = self._api("users.info", user=uid).get("user") or {}
            except (_ChannelFailed, SourceError):
                return uid  # a name is a nicety: the id still says who spoke
            profile = user.get("profile") or {}
            self._users[uid] = str(profile.get("display_name") or user.get("real_name") or profile.get("real_name")
                                   or user.get("name") or uid)
        return self._users[uid]

    # ------------------------------------------------------------ chat.search

    def chat_search(self, text: Any = None, channel: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        """Messages in ``[start, end)`` of the configured channels whose text holds ``text``, oldest first.

        Args:
            text: case-insensitive substring of the message text.
            channel: one channel (``#name``, ``name`` or id); only configured channels are read.
            start, end: ISO-8601 times; default the last ``window.lookback`` (3 h) up to now.

        Returns:
            ``{messages: [...]}``, plus ``truncated`` when ``max_messages`` stopped a channel's reading
            and ``missing_sources`` naming channels that could not be read.

        Raises:
            ToolArgumentError: a bad argument. SourceError: the token is refused, Slack is unreachable,
            or no channel could be read.
        """
        cap = "chat.search"
        needle = (opt_str(cap, "text", text) or "").lower()
        only = opt_str(cap, "channel", channel)
        t1 = opt_time(cap, "end", end)
        t1 = time.time() if t1 is None else t1
        t0 = opt_time(cap, "start", start)
        t0 = t1 - self.sources.lookback_s if t0 is None else t0
        if t0 >= t1:
            return {"messages": []}
        # Many channels, pages and threads could outlast the gateway's bound: the call gets one budget.
        budget = _Budget(time.monotonic() + self.timeout_s)
        if self.use_search:
            return self._search(needle, only, t0, t1, budget)
        found, missing = self._channels()
        if only is not None:
            key = only.lstrip("#")
            found = [(cid, name) for cid, name in found if key in (cid, name)]
            missing = [c for c in missing if c.lstrip("#") == key]
        rows: list[tuple[float, dict[str, Any]]] = []
        notes: list[str] = [self._not_found(c) for c in missing]
        truncated: list[str] = []
        for cid, name in found:
            if budget.late():
                truncated.append(f"#{name}: not read: {self._late_note()}")
                continue
            try:
                raws, cut = self._history(cid, name, t0, t1, budget)
            except _ChannelFailed as exc:
                notes.append(str(exc))
                continue
            if cut == "late":
                truncated.append(f"#{name}: {self._late_note()}")
            elif cut:
                truncated.append(f"#{name}: read the newest {self.max_messages} messages of the window "
                                 f"(raise {self.where}.max_messages or narrow the window)")
            for raw in raws:
                row = self._message(raw, name, t0, t1, needle, budget)
                if row is not None:
                    rows.append(row)
        if notes and len(notes) == len(found) + len(missing):
            raise SourceError("; ".join(notes))
        result: dict[str, Any] = {"messages": [m for _, m in sorted(rows, key=lambda r: r[0])]}
        if truncated:
            result["truncated"] = "; ".join(truncated)
        if notes:
            result["missing_sources"] = [f"{n.split(': ', 1)[0]} ({cap} failed: {n.split(': ', 1)[1]})" for n in notes]
        return result

    def _history(self, cid: str, name: str, t0: float, t1: float, budget: _Budget) -> tuple[list[dict[str, Any]], bool | str]:
        """Up to ``max_messages`` raw messages of one channel in the window (threads included), and whether
        more were left (True: the cap; ``"late"``: the time budget)."""
        out: list[dict[str, Any]] = []
        cursor = None
        window = {"oldest": f"{t0:.6f}", "latest": f"{t1:.6f}", "inclusive": True}
        while True:
            if out and budget.late():
                return out, "late"
            page = self._api("conversations.history", about=name, channel=cid, limit=min(PAGE_SIZE, self.max_messages - len(out)),
                             cursor=cursor, **window)
            msgs = [m for m in page.get("messages") or [] if isinstance(m, dict)]
            out += msgs
            cursor = (page.get("response_metadata") or {}).get("next_cursor") if page.get("has_more") else None
            if len(out) >= self.max_messages:
                return out[: self.max_messages], bool(cursor)
            if not cursor or not msgs:
                break
        if self.replies:
            for parent in list(out):
                if not (parent.get("reply_count") and parent.get("thread_ts") == parent.get("ts")):
                    continue
                cursor = None
                while True:
                    left = self.max_messages - len(out)
                    if left <= 0:
                        return out, True
                    if budget.late():
                        return out, "late"
                    page = self._api("conversations.replies", about=name, channel=cid, ts=parent["ts"],
                                     limit=min(PAGE_SIZE, left + 1), cursor=cursor, **window)
                    replies = [m for m in page.get("messages") or []
                               if isinstance(m, dict) and m.get("ts") != parent["ts"]]
                    out += replies[:left]
                    if len(replies) > left:
                        return out, True
                    cursor = (page.get("response_metadata") or {}).get("next_cursor") if page.get("has_more") else None
                    if not cursor:
                        break
        return out, False

    def _message(self, raw: dict[str, Any], channel: str, t0: float, t1: float, needle: str,
                 budget: _Budget) -> tuple[float, dict[str, Any]] | None:
        """``(epoch, contract message)`` or None when outside the window, filtered out or housekeeping."""
        try:
            epoch = float(raw.get("ts") or "")
        except ValueError:
            return None
        if not t0 <= epoch < t1 or raw.get("subtype") in _NOISE:
            return None
        body = str(raw.get("text") or "")
        if not body:  # alerting apps often post attachments only
            body = " ".join(str(a.get("fallback") or a.get("text") or "") for a in raw.get("attachments") or []
                            if isinstance(a, dict)).strip()
        if needle and needle not in body.lower():
            return None
        msg: dict[str, Any] = {"ts": iso(epoch), "channel": f"#{channel}", "user": self._user(raw, budget),
                               "text": body}
        thread = raw.get("thread_ts")
        if thread and thread != raw.get("ts"):
            try:
                msg["thread_ts"] = iso(float(thread))
            except ValueError:
                pass
        return epoch, msg

    def _search(self, needle: str, only: str | None, t0: float, t1: float, budget: _Budget) -> dict[str, Any]:
        """``chat.search`` through search.messages (a user token): Slack's index, then the exact filters here."""
        words = re.sub(r'["\s]+', " ", needle).strip()
        parts = [f'"{words}"'] if words else []
        if only and not _CHANNEL_ID.match(only):  # an id is filtered below: in: takes channel names
            parts.append(f"in:#{only.lstrip('#')}")
        # after:/before: are whole days and exclusive: widen by a day each side, then cut exactly below.
        parts.append("after:" + time.strftime("%Y-%m-%d", time.gmtime(t0 - 86400)))
        parts.append("before:" + time.strftime("%Y-%m-%d", time.gmtime(t1 + 86400)))
        allowed = {c.lstrip("#") for c in self.channels}
        rows: list[tuple[float, dict[str, Any]]] = []
        page_no, read, cut = 1, 0, False
        while True:
            if page_no > 1 and budget.late():
                cut = True
                break
            page = self._api("search.messages", query=" ".join(parts), count=SEARCH_PAGE_SIZE, page=page_no,
                             sort="timestamp", sort_dir="desc")
            block = page.get("messages") or {}
            matches = [m for m in block.get("matches") or [] if isinstance(m, dict)]
            for raw in matches:
                read += 1
                ch = raw.get("channel") or {}
                cid, name = str(ch.get("id") or ""), str(ch.get("name") or ch.get("id") or "")
                if allowed and not ({cid, name} & allowed):
                    continue
                if only and only.lstrip("#") not in (cid, name):
                    continue
                link_thread = parse_qs(urlparse(str(raw.get("permalink") or "")).query).get("thread_ts")
                item = dict(raw)
                if link_thread and not item.get("thread_ts"):
                    item["thread_ts"] = link_thread[0]
                row = self._message(item, name, t0, t1, needle, budget)
                if row is not None:
                    rows.append(row)
            pages = int((block.get("paging") or {}).get("pages") or 1)
            if read >= self.max_messages and page_no < pages:
                cut = True
                break
            if page_no >= pages or not matches:
                break
            page_no += 1
        result: dict[str, Any] = {"messages": [m for _, m in sorted(rows, key=lambda r: r[0])]}
        if cut:
            result["truncated"] = (f"search.messages: read the newest {read} matches "
                                   f"(raise {self.where}.max_messages or timeout_s, or search more narrowly)")
        return result

    def check(self) -> str:
        """``Slack team T as U; reads #a, #b`` (auth.test, then one message of each channel's history).

        Raises:
            SourceError: the token is refused, Slack is unreachable, or a channel cannot be read.
        """
        who = self._api("auth.test")
        if self.use_search and not self.channels:
            return f"Slack team {who.get('team')} as {who.get('user')}; search.messages over the workspace"
        found, missing = self._channels()
        problems = [self._not_found(c) for c in missing]
        for cid, name in found:
            try:
                self._api("conversations.history", about=name, channel=cid, limit=1)
            except _ChannelFailed as exc:
                problems.append(str(exc))
        if problems:
            raise SourceError("; ".join(problems))
        names = ", ".join(f"#{name}" for _, name in found)
        return f"Slack team {who.get('team')} as {who.get('user')}; reads {names}"

    def close(self) -> None:
        """Nothing to release: the WebClient opens a connection per call."""


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", None) or {}
    for k, v in dict(headers).items():
        if str(k).lower() == "retry-after":
            value = v[0] if isinstance(v, list) and v else v
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return 1.0

