"""Engine and sessions for the ledger, and the migrations that run on start."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InvalidatePoolError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session as Session  # re-exported: services name the type, store modules own SQL
from sqlalchemy.orm import sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from connector.domain.intake import storable_json

MIGRATIONS = Path(__file__).parent / "migrations"

#: Any failure of the ledger itself (not of a record): services tell it apart without importing SQLAlchemy.
LedgerError = SQLAlchemyError

#: A concurrent writer won a race for a row (a stale optimistic lock, a duplicate insert): read and try again.
CONCURRENT_WRITE: tuple[type[Exception], ...] = (StaleDataError, IntegrityError)
T = TypeVar("T")


class NeedsTransaction(Exception):
    """Raised, before anything is written, by a store function asked on a session whose statements each
    commit by themselves (Transactions.at_once) for what must hold to a commit (a row lock) or be atomic
    with more (two writes, or objects added to the session): the unit of work runs again in a transaction."""


_AT_ONCE = "connector.at_once"  # session.info: each statement commits by itself (Transactions.at_once)


def needs_transaction(session: Session) -> None:
    """Raise NeedsTransaction when the session's statements each commit by themselves."""
    if commits_each_statement(session):
        raise NeedsTransaction()


def commits_each_statement(session: Session) -> bool:
    """Whether the session's statements each commit by themselves (Transactions.at_once)."""
    return bool(session.info.get(_AT_ONCE))


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """SQLite gets WAL and a busy timeout (worker, beat and CLI share one file); PostgreSQL a schema. Both
    write JSON columns through domain.intake.storable_json (PostgreSQL refuses NaN in JSON)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=storable_json)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    engine = create_engine(parsed, connect_args=connect_args, json_serializer=storable_json)
    ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


#: A pooled connection back in use after resting longer than this is pinged first (see ping_when_idle).
PING_AFTER_IDLE_SECONDS = 1.0


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout only when it rested longer than `idle_seconds`; a dead one is
    replaced, as the pool's own pre-ping would. The pool's pre-ping costs a round trip on every checkout
    (two per mapped bill, whose whole work is a dozen); a connection handed back moments ago is as likely
    to drop during its next statement as before it, and that is handled where statements fail anyway."""

    @event.listens_for(engine, "checkin")
    def _rested_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_rested(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # fresh from connect, or just handed back
        try:
            engine.dialect.do_ping(dbapi_connection)  # what the pool's pre-ping sends (outside a transaction)
        except engine.dialect.loaded_dbapi.Error as error:
            # As the pool's pre-ping: this connection and every one opened before it are dropped, and the
            # checkout is tried again on a new one.
            raise InvalidatePoolError(f"ping after {time.monotonic() - since:.1f} s idle failed: {error}") from error


DURABLE_WRITE_SECONDS = 60.0  # how long a write of an outside fact waits out a database blip
MIGRATION_LOCK = 7_240_301  # pg_advisory lock id: pods starting together migrate one at a time


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to run from every process on start."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Ledger:
    """Owns the engine and hands out short transactions; the one way code reaches the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._kept = threading.local()
        self._all_kept: list[KeptConnection] = []
        self._kept_lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, *, schema: str | None = None, run_migrations: bool = True) -> Ledger:
        engine = make_engine(url, schema=schema)
        if run_migrations:
            migrate(engine)
        return cls(engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def autocommitted(self, work: Callable[[Session], T]) -> T:
        """Run `work` with each statement committed by itself, with no BEGIN and COMMIT around them (two
        round trips fewer): for one write that must be durable before what follows, and reads that need
        no common snapshot (PostgreSQL's READ COMMITTED gives each statement its own anyway)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection, \
                Session(bind=connection, expire_on_commit=False) as session:
            found = work(session)
            session.commit()
            return found

    def retrying(self, work: Callable[[Session], T], *, attempts: int = 6) -> T:
        """Run `work` in a transaction, and again when a concurrent writer won the race for a row
        (a stale optimistic lock, or a duplicate insert); `work` must read what it decides on."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except (StaleDataError, IntegrityError):
                if attempt == attempts:
                    raise
                time.sleep(random.uniform(0, 0.02 * attempt))
        raise AssertionError("unreachable")

    def at_once(self, work: Callable[[Session], T]) -> T:
        """As KeptConnection.at_once; here (SQLite, where a transaction costs no round trip) `retrying`."""
        return self.retrying(work)

    def durably(self, work: Callable[[Session], T], *, for_seconds: float = DURABLE_WRITE_SECONDS) -> T:
        """Like `retrying`, and also through a database blip (a dropped connection, a failover, a locked
        SQLite file) for up to `for_seconds`: for writes that record what already happened outside, such as
        a remote rename, where giving up would leave a doubt for the next attempt to settle."""
        deadline = time.monotonic() + for_seconds
        pause = 0.05
        while True:
            try:
                return self.retrying(work)
            except (OperationalError, InterfaceError):
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def kept(self) -> Transactions:
        """This thread's kept connection (see KeptConnection) on PostgreSQL; the ledger itself on SQLite."""
        if self.engine.dialect.name != "postgresql":
            return self
        kept: KeptConnection | None = getattr(self._kept, "connection", None)
        if kept is None:
            kept = self._kept.connection = KeptConnection(self.engine)
            with self._kept_lock:
                self._all_kept.append(kept)
        return kept

    def dispose(self) -> None:
        with self._kept_lock:
            for kept in self._all_kept:
                kept.drop()
            self._all_kept.clear()
        self.engine.dispose()


class Transactions(Protocol):
    """Where a service runs its unit of work: the ledger's pool, or a kept connection."""

    def autocommitted(self, work: Callable[[Session], T]) -> T: ...

    def retrying(self, work: Callable[[Session], T], *, attempts: int = 6) -> T: ...

    def at_once(self, work: Callable[[Session], T]) -> T: ...


class KeptConnection:
    """Two PostgreSQL connections a thread keeps for the work it does for every bill (mapping), outside the
    pool: one in autocommit (a run count), one for transactions (a decision), each at its isolation level
    for its whole life. No checkout, return or reset per unit of work, and their commits do not wait for
    the WAL flush (synchronous_commit off, set once when each opens). One connection switched between the
    two levels for each unit of work made SQLAlchemy keep a callback per switch (to reset the level when
    the connection goes back to a pool it never goes back to): 0.8 MB per 1,000 bills, for as long as the
    worker lived.

    Why that is safe for mapping: a commit is visible to every other session at once either way; only a
    crash of PostgreSQL itself within a fraction of a second can lose it, and then it is lost with every
    later one (the WAL is a sequence), as if that mapping never ran and its message vanished: the bill is
    DISCOVERED with its map marks as they were, which the sweeper sends again. Anything that acts outside
    the ledger on a mapping (a batch's claim, a delivery) commits synchronously, and that flush covers the
    mappings before it. A worker that dies mid-mapping leaves its committed run count in place: only the
    server's crash can lose an unflushed commit. A connection never goes back to the pool (the setting
    would follow it): it is dropped when a statement on it fails, and pinged after it rested as the pool's
    connections are."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connections: dict[str, Connection] = {}  # by isolation level
        self._used_at: dict[str, float] = {}

    def autocommitted(self, work: Callable[[Session], T]) -> T:
        """As Ledger.autocommitted, on the autocommit connection."""
        connection = self._take(AUTOCOMMIT)
        try:
            with Session(bind=connection, expire_on_commit=False) as session:
                found = work(session)
                session.commit()
                return found
        except DBAPIError:
            self._drop(AUTOCOMMIT)  # broken, or in a state we do not know: never used again
            raise
        finally:
            self._used_at[AUTOCOMMIT] = time.monotonic()

    def at_once(self, work: Callable[[Session], T]) -> T:
        """Run `work` on the autocommit connection, its one write committed by itself with no BEGIN and
        COMMIT around it (two round trips of a bill's four, when its decision locks nothing); as `retrying`
        when it needs more (it raised NeedsTransaction, having written nothing) or lost a race for a row
        (nothing was written: its one write took the row only at the version it read)."""
        try:
            return self.autocommitted(lambda session: work(_at_once(session)))
        except (NeedsTransaction, StaleDataError, IntegrityError):
            return self.retrying(work)

    def retrying(self, work: Callable[[Session], T], *, attempts: int = 6) -> T:
        """As Ledger.retrying, on the connection for transactions."""
        for attempt in range(1, attempts + 1):
            connection = self._take(READ_COMMITTED)
            try:
                with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except (StaleDataError, IntegrityError):
                if attempt == attempts:
                    raise
                time.sleep(random.uniform(0, 0.02 * attempt))
            except DBAPIError:
                self._drop(READ_COMMITTED)
                raise
            finally:
                self._used_at[READ_COMMITTED] = time.monotonic()
        raise AssertionError("unreachable")

    def _take(self, level: str) -> Connection:
        connection = self._connections.get(level)
        if connection is not None and time.monotonic() - self._used_at.get(level, 0.0) > PING_AFTER_IDLE_SECONDS:
            try:
                dbapi_connection = connection.connection.dbapi_connection
                assert dbapi_connection is not None  # a live Connection holds one
                self._engine.dialect.do_ping(dbapi_connection)
            except self._engine.dialect.loaded_dbapi.Error:
                self._drop(level)  # the server dropped it while it rested: a new one
                connection = None
        if connection is None:
            connection = self._engine.connect().execution_options(isolation_level=AUTOCOMMIT)
            try:
                connection.exec_driver_sql("SET synchronous_commit = off")
                connection.commit()  # ends the transaction object SQLAlchemy began around it (no round trip)
                if level != AUTOCOMMIT:
                    connection.execution_options(isolation_level=level)  # once, for the connection's life
            except BaseException:
                connection.invalidate()
                connection.close()
                raise
            self._connections[level] = connection
        return connection

    def _drop(self, level: str) -> None:
        connection = self._connections.pop(level, None)
        if connection is not None:
            connection.invalidate()
            connection.close()

    def drop(self) -> None:
        for level in list(self._connections):
            self._drop(level)


AUTOCOMMIT = "AUTOCOMMIT"
READ_COMMITTED = "READ COMMITTED"


def _at_once(session: Session) -> Session:
    session.info[_AT_ONCE] = True
    return session
