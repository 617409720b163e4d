"""Readers' answers in SQLite: one row per reader and case, committed as each answer arrives.

WAL journal and ``synchronous=FULL``: an answer the server acknowledged survives the server
being killed. Each call opens its own short-lived connection, so request threads share nothing.
A database that is damaged, not SQLite, or (for the server) not writable is refused when the
store is opened, as an ``InputError`` naming the file, before any reader sees the study.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synthtumor.errors import InputError
from synthtumor.turing.study import ANSWERS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readers (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    reader TEXT NOT NULL REFERENCES readers(name),
    case_id TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'synthetic', 'unsure')),
    answered REAL NOT NULL,
    PRIMARY KEY (reader, case_id)
);
"""


class AnswerStore:
    """The answers database of one study (``answers.sqlite`` in the study folder)."""

    def __init__(self, path: str | Path, write: bool = True) -> None:
        """Open (``write``: create if missing) the database; InputError if it is unusable.

        ``write=False`` (the report) only reads: a read-only database is fine there.
        """
        self.path = Path(path)
        try:
            with self._connect() as conn:
                if write:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)
                ok = conn.execute("PRAGMA quick_check").fetchone()
                if ok is None or ok[0] != "ok":
                    raise sqlite3.DatabaseError(f"damaged ({ok[0] if ok else 'no answer'})")
                conn.execute("SELECT COUNT(*) FROM readers").fetchone()
                conn.execute("SELECT COUNT(*) FROM answers").fetchone()
                if write:  # a read-only file opens fine and fails only at the first answer
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute("INSERT OR REPLACE INTO readers VALUES ('', 0)")
                    finally:
                        conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            doing = "write to" if write else "read"
            raise InputError(self.path, f"cannot {doing} the answers database: {err} (move it "
                             "aside to start afresh, or restore it from a backup)") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    def add_reader(self, name: str) -> bool:
        """Register ``name`` (already cleaned); True if new, False if it existed."""
        with self._connect() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO readers (name, created) VALUES (?, ?)",
                               (name, time.time()))
            return cur.rowcount == 1

    def has_reader(self, name: str) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM readers WHERE name = ?", (name,)).fetchone()
            return row is not None

    def readers(self) -> list[str]:
        """All reader names, in order of registration."""
        with self._connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM readers ORDER BY created, name")]

    def save(self, reader: str, case_id: str, answer: str) -> None:
        """Store (or replace) one answer in its own transaction; the caller validated the ids."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO answers (reader, case_id, answer, answered) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (reader, case_id) DO UPDATE SET answer = excluded.answer, "
                    "answered = excluded.answered",
                    (reader, case_id, answer, time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def answers(self, reader: str | None = None) -> dict[str, dict[str, str]]:
        """{reader: {case_id: answer}} for one reader or all."""
        query = "SELECT reader, case_id, answer FROM answers"
        args: tuple[str, ...] = ()
        if reader is not None:
            query, args = query + " WHERE reader = ?", (reader,)
        out: dict[str, dict[str, str]] = {}
        with self._connect() as conn:
            for name, case_id, answer in conn.execute(query + " ORDER BY answered", args):
                out.setdefault(name, {})[case_id] = answer
        return out

    def count(self) -> int:
        """Number of answer rows (all readers)."""
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
