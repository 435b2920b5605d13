"""``aiweb.db.session.transaction`` on SQLite: a process's writers queue on the engine's
writer lock (instead of polling SQLite's lock), nested transactions of one thread do not
deadlock, and other engines get no lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from aiweb.db import session as db


def test_writers_of_one_sqlite_engine_take_turns(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    factory = db.make_session_factory(engine)
    with db.transaction(factory) as s:
        s.execute(text("CREATE TABLE t (who TEXT, at REAL)"))
    events: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with db.transaction(factory) as s:
            first_in.set()
            events.append("first begins")
            time.sleep(0.3)  # holds the writer lock
            s.execute(text("INSERT INTO t VALUES ('first', 0)"))
            events.append("first ends")

    def second() -> None:
        first_in.wait(5)
        with db.transaction(factory) as s:
            events.append("second begins")
            s.execute(text("INSERT INTO t VALUES ('second', 0)"))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert events == ["first begins", "first ends", "second begins"]
    # a transaction opened inside another in one thread: the lock is re-entrant
    with db.transaction(factory) as outer:
        with db.transaction(factory) as inner:
            inner.execute(text("INSERT INTO t VALUES ('inner', 0)"))
        outer.execute(text("INSERT INTO t VALUES ('outer', 0)"))
    with factory() as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar_one() == 4
    engine.dispose()


def test_only_sqlite_engines_have_a_writer_lock(tmp_path: Path) -> None:
    sqlite = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    postgres = db.make_engine("postgresql://nobody@127.0.0.1:1/none")  # never connected
    assert sqlite in db._SQLITE_WRITERS
    assert postgres not in db._SQLITE_WRITERS
    sqlite.dispose()
    postgres.dispose()
