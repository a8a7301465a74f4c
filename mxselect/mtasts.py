"""The MTA-STS policy cache (RFC 8461 §3.3, §10.2): stores that keep policies across restarts,
and :class:`PolicyCache`, which applies the pure rules of the core to a store.

Not imported by ``import mxselect`` or by the core; it needs only the standard library.

RFC 8461 §10.2: MTA-STS resists a downgrade only while the sender remembers the policy, so
the cache must survive restarts: use :class:`SQLiteStore` (or a store of your own that follows
:class:`PolicyStore`) in production, :class:`MemoryStore` in tests and one-shot tools::

    cache = PolicyCache(SQLiteStore("/var/lib/mta/mta-sts.sqlite3"))
    entry = cache.lookup("example.com")              # what the plan passes to discover()
    for domain in cache.refresh_due():               # once an hour, say: §3.3 daily refresh
        ...

The rules themselves are pure functions, re-exported here (they live in the core, which is
pure: no I/O, no clock): :func:`parse_record` (§3.1), :func:`parse_policy` (§3.2),
:func:`mx_matches` and :func:`policy_matches` (§4.1), :func:`discover` and :func:`fetched`
(the cache decisions of §3.1, §3.3, §5.1) and :func:`refresh_due` (§3.3, §10.2).

The stores are synchronous. They are quick (one indexed SQLite row), so an asyncio program may
call them directly, or through ``asyncio.to_thread`` if its store is slow; there is no async
store interface.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ._answers import MAX_POLICY_BYTES, Answer, FetchResult
from ._sts import (
    CHECK_INTERVAL,
    FAILURE_RETRY,
    MAX_MAX_AGE,
    Discovery,
    Fetched,
    StsEntry,
    StsError,
    StsMode,
    StsPolicy,
    StsRecord,
    discover,
    fetched,
    mx_matches,
    parse_policy,
    parse_record,
    policy_matches,
    refresh_due,
)

__all__ = [
    "CHECK_INTERVAL",
    "FAILURE_RETRY",
    "MAX_MAX_AGE",
    "SCHEMA_VERSION",
    "Discovery",
    "Fetched",
    "MemoryStore",
    "PolicyCache",
    "PolicyStore",
    "SQLiteStore",
    "StsError",
    "discover",
    "fetched",
    "mx_matches",
    "parse_policy",
    "parse_record",
    "policy_matches",
    "refresh_due",
]


@runtime_checkable
class PolicyStore(Protocol):
    """Where :class:`~mxselect.StsEntry` values are kept, one per policy domain.

    The contract (``tests/test_mtasts.py`` runs it against every store here):

    * ``get(domain)`` returns the entry last stored for ``domain`` (the domain as given to
      ``put``, i.e. :attr:`~mxselect.StsEntry.domain`), or ``None``;
    * ``put(entry)`` stores it -- *unless* the store holds an entry for the domain whose
      ``fetched_at`` is later: another process fetched a newer policy meanwhile, and an
      update computed from the older entry (a failure recorded, a ``checked_at``) must not
      undo it;
    * ``entries()`` iterates over every entry (in no particular order);
    * ``delete(domain)`` removes the domain's entry, if any.

    A store shared by several processes or threads must make each call atomic.
    """

    def get(self, domain: str) -> StsEntry | None: ...

    def put(self, entry: StsEntry) -> None: ...

    def entries(self) -> Iterator[StsEntry]: ...

    def delete(self, domain: str) -> None: ...


class MemoryStore:
    """A :class:`PolicyStore` in a dict: lost when the process ends (tests, one-shot tools).
    Thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, StsEntry] = {}
        self._lock = threading.Lock()

    def get(self, domain: str) -> StsEntry | None:
        """The entry of ``domain``, or ``None``."""
        return self._entries.get(domain)

    def put(self, entry: StsEntry) -> None:
        """Store ``entry``, unless the entry held for its domain was fetched later."""
        with self._lock:
            old = self._entries.get(entry.domain)
            if old is None or entry.fetched_at >= old.fetched_at:
                self._entries[entry.domain] = entry

    def entries(self) -> Iterator[StsEntry]:
        """Every entry (a snapshot)."""
        with self._lock:
            return iter(list(self._entries.values()))

    def delete(self, domain: str) -> None:
        """Remove the entry of ``domain``, if any."""
        with self._lock:
            self._entries.pop(domain, None)

    def __len__(self) -> int:
        return len(self._entries)


#: The schema version of :class:`SQLiteStore` databases (``PRAGMA user_version``).
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE sts_entry (
    domain     TEXT PRIMARY KEY,
    id         TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    checked_at REAL NOT NULL,
    failed_id  TEXT,
    failed_at  REAL,
    mode       TEXT NOT NULL,
    max_age    INTEGER NOT NULL,
    mx         TEXT NOT NULL,
    text       TEXT NOT NULL,
    warnings   TEXT NOT NULL
)
"""
_COLUMNS = (
    "domain, id, fetched_at, checked_at, failed_id, failed_at, mode, max_age, mx, text, warnings"
)
_PUT = f"""
INSERT INTO sts_entry ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (domain) DO UPDATE SET
    id = excluded.id, fetched_at = excluded.fetched_at, checked_at = excluded.checked_at,
    failed_id = excluded.failed_id, failed_at = excluded.failed_at, mode = excluded.mode,
    max_age = excluded.max_age, mx = excluded.mx, text = excluded.text,
    warnings = excluded.warnings
WHERE excluded.fetched_at >= sts_entry.fetched_at
"""


def _row(entry: StsEntry) -> tuple[Any, ...]:
    policy = entry.policy
    return (
        entry.domain,
        entry.id,
        entry.fetched_at,
        entry.checked_at,
        entry.failed_id,
        entry.failed_at,
        policy.mode.value,
        policy.max_age,
        json.dumps(list(policy.mx)),
        policy.text,
        json.dumps(list(policy.warnings)),
    )


def _entry(row: tuple[Any, ...]) -> StsEntry:
    domain, id_, fetched_at, checked_at, failed_id, failed_at, mode, max_age, mx, text, warn = row
    policy = StsPolicy(
        mode=StsMode(mode),
        mx=tuple(json.loads(mx)),
        max_age=int(max_age),
        text=text,
        warnings=tuple(json.loads(warn)),
    )
    return StsEntry(
        domain=domain,
        policy=policy,
        id=id_,
        fetched_at=float(fetched_at),
        checked_at=float(checked_at),
        failed_id=failed_id,
        failed_at=None if failed_at is None else float(failed_at),
    )


class SQLiteStore:
    """A :class:`PolicyStore` in an SQLite database: it survives restarts (RFC 8461 §10.2) and
    may be shared by the processes and threads of one MTA.

    * The database is in WAL mode (readers never wait for a writer) with
      ``synchronous=NORMAL``: a committed entry survives a crash of the process; a power loss
      may lose the last ones (they are fetched again).
    * Each write is one ``BEGIN IMMEDIATE`` transaction; a process that finds the database
      locked waits up to ``timeout`` seconds (SQLite's busy timeout) before
      :class:`sqlite3.OperationalError` is raised.
    * One connection per thread and per process: a store created before ``fork()`` opens new
      connections in the child; :meth:`close` closes them all.
    * Serialisation: one row per domain, with the policy's fields as columns (``mx`` and
      ``warnings`` as JSON arrays) and its text; the policy is *not* re-parsed on load, so an
      entry reads back exactly as stored even if a later parser were stricter.
    * The schema is versioned with ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`, now 1): a
      new database is created at the current version; a database of a later version is
      refused (:class:`RuntimeError`) rather than misread.

    Args:
        path: the database file (created if missing, with its directory's permissions).
        timeout: how long a call waits for a lock held by another connection (seconds).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._setup(self._connection())

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == pid:
            return held[1]
        # isolation_level=None: no implicit transactions; writes open BEGIN IMMEDIATE.
        # check_same_thread=False only so that close() may close every thread's connection.
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._local.held = (pid, conn)
        with self._lock:
            self._connections.append((pid, conn))
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # two processes creating the database at once
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                conn.execute(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: MTA-STS store schema version {version} is newer than "
                    f"this mxselect's ({SCHEMA_VERSION})"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def get(self, domain: str) -> StsEntry | None:
        """The entry of ``domain``, or ``None``."""
        row = (
            self._connection()
            .execute(f"SELECT {_COLUMNS} FROM sts_entry WHERE domain = ?", (domain,))
            .fetchone()
        )
        return None if row is None else _entry(row)

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def put(self, entry: StsEntry) -> None:
        """Store ``entry``, unless the entry held for its domain was fetched later."""
        self._write(_PUT, _row(entry))

    def entries(self) -> Iterator[StsEntry]:
        """Every entry (read at once: no transaction stays open while you iterate)."""
        rows = self._connection().execute(f"SELECT {_COLUMNS} FROM sts_entry").fetchall()
        return iter([_entry(row) for row in rows])

    def delete(self, domain: str) -> None:
        """Remove the entry of ``domain``, if any."""
        self._write("DELETE FROM sts_entry WHERE domain = ?", (domain,))

    def close(self) -> None:
        """Close the connections this process opened (any thread's); the store reopens on
        the next call."""
        pid = os.getpid()
        with self._lock:
            mine = [c for p, c in self._connections if p == pid]
            self._connections = [(p, c) for p, c in self._connections if p != pid]
        for conn in mine:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _domain(domain: str) -> str:
    domain = domain.lower()
    return domain[:-1] if domain.endswith(".") else domain


class PolicyCache:
    """The pure MTA-STS rules (:func:`discover`, :func:`fetched`, :func:`refresh_due`) applied
    to a :class:`PolicyStore`, with a clock.

    Args:
        store: where entries are kept (:class:`SQLiteStore` for an MTA: RFC 8461 §10.2).
        clock: seconds since the epoch (``time.time``; pass a fake in tests).

    Domains are looked up lower-cased and without a trailing dot.
    """

    def __init__(self, store: PolicyStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def lookup(self, domain: str) -> StsEntry | None:
        """The stored entry of ``domain`` -- valid, expired or a failure placeholder -- as
        :func:`discover` and :func:`fetched` take it; ``None`` if there is none."""
        return self.store.get(_domain(domain))

    def policy(self, domain: str, now: float | None = None) -> StsPolicy | None:
        """The valid cached policy of ``domain`` at ``now`` (default: the clock), or ``None``."""
        entry = self.lookup(domain)
        now = self.clock() if now is None else now
        return entry.policy if entry is not None and entry.valid(now) else None

    def discover(self, domain: str, txt: Answer | None, now: float | None = None) -> Discovery:
        """:func:`discover` with the stored entry; stores :attr:`Discovery.entry` if any."""
        now = self.clock() if now is None else now
        found = discover(self.lookup(domain), txt, now)
        if found.entry is not None:
            self.store.put(found.entry)
        return found

    def fetched(
        self,
        domain: str,
        record: StsRecord,
        result: FetchResult,
        now: float | None = None,
        max_bytes: int = MAX_POLICY_BYTES,
    ) -> Fetched:
        """:func:`fetched` with the stored entry; stores :attr:`Fetched.entry` if any."""
        now = self.clock() if now is None else now
        domain = _domain(domain)
        done = fetched(self.store.get(domain), domain, record, result, now, max_bytes)
        if done.entry is not None:
            self.store.put(done.entry)
        return done

    def refresh_due(
        self, now: float | None = None, *, refresh: float = 86400, expiring: float = 86400
    ) -> list[str]:
        """The domains to refresh now (:func:`refresh_due`: RFC 8461 §3.3 "a suggested refresh
        frequency is once per day"). Policies in mode none are listed; do not alert on their
        failures (§10.2)."""
        now = self.clock() if now is None else now
        return refresh_due(self.store.entries(), now, refresh=refresh, expiring=expiring)

    def purge(self, now: float | None = None) -> list[str]:
        """Delete the entries that can no longer matter: policy expired and no fetch failure
        within the last five minutes (RFC 8461 §3.3). Returns the domains deleted."""
        now = self.clock() if now is None else now
        gone = []
        for entry in self.store.entries():
            recent = entry.failed_at is not None and now - entry.failed_at < FAILURE_RETRY
            if not entry.valid(now) and not recent:
                self.store.delete(entry.domain)
                gone.append(entry.domain)
        return sorted(gone)
