"""Keyword search: one full-text index per collection, in the collection's database.

* SQLite: an FTS5 table ``search_fts_<collection id>`` (rowid = document key) with the
  ``porter unicode61 remove_diacritics 2`` tokenizer, ranked by FTS5's ``bm25()``
  (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009;
  k1 = 1.2, b = 0.75). The score is ``-bm25()``: higher is better.
* PostgreSQL: a table ``search_kw_<collection id>`` of ``to_tsvector('english', text)``
  with a GIN index, queried with ``websearch_to_tsquery('english', query)`` and ranked by
  ``ts_rank_cd(tsv, query, 1)`` (cover density, divided by 1 + log of the document
  length; PostgreSQL's ranking has no IDF, so it is not BM25).

Queries use web-search syntax, as PostgreSQL's ``websearch_to_tsquery`` reads it (and
SQLite through :func:`parse_query`, which renders it for FTS5): every word must appear
(``detective london``), ``"quoted words"`` must appear together in that order, ``or``
between words accepts either side, and ``-word`` excludes documents with the word. Words
are stemmed (English); English stop words are ignored unless the query has nothing else.
Punctuation and any other syntax are never an error: they separate words. In ``hybrid``
search this makes the keyword list a precision signal: a document containing every word
of the query ranks up, and a question that no document contains word for word (such as
"detective stories in Victorian London" over book titles) leaves the ranking to the
embeddings instead of to documents that share one common word with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    ColumnClause,
    Connection,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)

from aiweb.search.filters import Filter
from aiweb.search.index import Keys, Scores
from aiweb.search.orm import SqlDocument

#: most query words used
MAX_QUERY_TERMS = 64
_WORD = re.compile(r"[^\W_]+")
_DOCS = cast(Table, SqlDocument.__table__)
_REGCONFIG: Any = literal_column("'english'::regconfig")


#: English stop words: Snowball's list, the one PostgreSQL's ``english`` configuration
#: uses (``tsearch_data/english.stop``), so both databases ignore the same words.
STOP_WORDS = frozenset(
    (
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "ourselves",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "her",
        "hers",
        "herself",
        "it",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "a",
        "an",
        "the",
        "and",
        "but",
        "if",
        "or",
        "because",
        "as",
        "until",
        "while",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "don",
        "should",
        "now",
    )
)


@dataclass(frozen=True)
class Clause:
    """Documents with every phrase of ``include`` and none of ``exclude`` (a phrase is a
    tuple of words that must appear in order; one word: a term)."""

    include: tuple[tuple[str, ...], ...]
    exclude: tuple[tuple[str, ...], ...] = ()


_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse_query(query: str) -> list[Clause]:
    """Parse web-search syntax (see the module docs) into clauses, any of which may
    match (``or``).

    Unquoted stop words are dropped unless no other word is left; a clause with nothing
    to include is dropped (FTS5 cannot express "everything but"); at most
    :data:`MAX_QUERY_TERMS` words are kept.

    Returns:
        The clauses; empty when the query has no word.
    """
    groups: list[list[tuple[bool, bool, tuple[str, ...]]]] = [[]]  # (negated, quoted, words)
    pending_or = False
    budget = MAX_QUERY_TERMS
    for match in _TOKEN.finditer(query):
        minus, quoted, raw = match.group(1), match.group(2), match.group(3)
        negated = bool(minus)
        if quoted is None:
            if raw.lower() == "or":
                pending_or = bool(groups[-1])
                continue
            negated = raw.startswith("-")
        words = tuple(w.lower()[:100] for w in _WORD.findall(quoted if quoted is not None else raw))
        words = words[:budget]
        if not words:
            continue
        budget -= len(words)
        if pending_or:
            groups.append([])
            pending_or = False
        groups[-1].append((negated, quoted is not None, words))
        if budget <= 0:
            break
    stop = STOP_WORDS
    content = any(
        not neg and (quoted or any(w not in stop for w in words))
        for group in groups
        for neg, quoted, words in group
    )
    clauses = []
    for group in groups:
        include = tuple(
            words
            for neg, quoted, words in group
            if not neg and (quoted or not content or not all(w in stop for w in words))
        )
        exclude = tuple(words for neg, _, words in group if neg)
        if include:
            clauses.append(Clause(tuple(dict.fromkeys(include)), exclude))
    return clauses


def fts5_query(clauses: Sequence[Clause]) -> str:
    """Render clauses as an FTS5 ``MATCH`` expression (words cannot hold a quote)."""

    def phrase(words: tuple[str, ...]) -> str:
        return '"' + " ".join(words) + '"'

    rendered = []
    for clause in clauses:
        part = " AND ".join(phrase(p) for p in clause.include)
        part += "".join(f" NOT {phrase(n)}" for n in clause.exclude)
        rendered.append(f"({part})")
    return " OR ".join(rendered)


def table_name(dialect: str, collection_id: int) -> str:
    """The keyword table of a collection."""
    prefix = "search_kw_" if dialect == "postgresql" else "search_fts_"
    return f"{prefix}{int(collection_id)}"


def create(conn: Connection, collection_id: int) -> None:
    """Create the collection's keyword table (in the caller's transaction)."""
    name = table_name(conn.dialect.name, collection_id)
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"CREATE TABLE {name} (key BIGINT PRIMARY KEY REFERENCES search_documents(id) "
                "ON DELETE CASCADE, tsv TSVECTOR NOT NULL)"
            )
        )
        conn.execute(text(f"CREATE INDEX {name}_tsv ON {name} USING gin (tsv)"))
    else:
        conn.execute(
            text(
                f"CREATE VIRTUAL TABLE {name} USING fts5(text, "
                "tokenize = 'porter unicode61 remove_diacritics 2')"
            )
        )


def drop(conn: Connection, collection_id: int) -> None:
    """Drop the collection's keyword table, if it exists."""
    conn.execute(text(f"DROP TABLE IF EXISTS {table_name(conn.dialect.name, collection_id)}"))


def write(conn: Connection, collection_id: int, keys: Sequence[int], texts: Sequence[str]) -> None:
    """Index (or re-index) ``texts`` under ``keys``."""
    if not keys:
        return
    name = table_name(conn.dialect.name, collection_id)
    rows = [{"k": int(k), "t": t} for k, t in zip(keys, texts, strict=True)]
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"INSERT INTO {name} (key, tsv) VALUES (:k, to_tsvector('english', :t)) "  # noqa: S608 (table names come from integer ids)
                "ON CONFLICT (key) DO UPDATE SET tsv = EXCLUDED.tsv"
            ),
            rows,
        )
    else:
        remove(conn, collection_id, keys)
        conn.execute(text(f"INSERT INTO {name} (rowid, text) VALUES (:k, :t)"), rows)  # noqa: S608 (table names come from integer ids)


def remove(conn: Connection, collection_id: int, keys: Sequence[int]) -> None:
    """Remove ``keys`` from the index (absent keys are ignored)."""
    if not keys:
        return
    name = table_name(conn.dialect.name, collection_id)
    column_name = "key" if conn.dialect.name == "postgresql" else "rowid"
    conn.execute(
        text(f"DELETE FROM {name} WHERE {column_name} = :k"),  # noqa: S608 (integer ids)
        [{"k": int(k)} for k in keys],
    )


@functools.lru_cache(maxsize=1024)
def _statement(dialect: str, name: str) -> tuple[Select[Any], ColumnClause[Any]]:
    """The ranked keyword query of table ``name`` and its key column; the query text
    (``q``) and the limit (``k``) are bound per search.

    Built once per table: the table and column objects of a statement reference each
    other, so building them per request left ~30 objects in reference cycles for the
    cyclic garbage collector each time, and with ``AIWEB_SERVING__GC_GEN0_THRESHOLD``
    at 50,000 every young collection freed them by the tens of thousands, stalling the
    process for 30-170 ms (docs/benchmarks.md).
    """
    limit = bindparam("k", type_=Integer())
    if dialect == "postgresql":
        kw = table(name, column("key"), column("tsv"))
        tsquery = func.websearch_to_tsquery(_REGCONFIG, bindparam("q", type_=String()))
        score = func.ts_rank_cd(kw.c.tsv, tsquery, 1)
        stmt = (
            select(kw.c.key, score.label("score"))
            .where(kw.c.tsv.op("@@")(tsquery))
            .order_by(score.desc(), kw.c.key)
            .limit(limit)
        )
        return stmt, kw.c.key
    fts = table(name, column("rowid"))
    bm25 = func.bm25(literal_column(name))
    stmt = (
        select(fts.c.rowid, (-bm25).label("score"))
        .where(literal_column(name).op("MATCH")(bindparam("q", type_=String())))
        .order_by(bm25, fts.c.rowid)
        .limit(limit)
    )
    return stmt, fts.c.rowid


def search(
    conn: Connection, collection_id: int, query: str, k: int, where: Filter | None
) -> tuple[Keys, Scores]:
    """The ``k`` best keyword matches of ``query`` (web-search syntax, see the module
    docs) among the documents ``where`` admits.

    Returns:
        ``(keys, scores)``: int64 and float32 arrays, best first; empty when no document
        matches.
    """
    dialect = conn.dialect.name
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if dialect == "postgresql":
        if not _WORD.search(query):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        text_param = query
    else:
        clauses = parse_query(query)
        if not clauses:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        text_param = fts5_query(clauses)
    stmt, key_col = _statement(dialect, table_name(dialect, collection_id))
    if where is not None:
        stmt = stmt.join(_DOCS, _DOCS.c.id == key_col).where(
            where.clause(_DOCS.c.metadata, dialect)
        )
    rows = conn.execute(stmt, {"q": text_param, "k": int(k)}).all()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    scores = np.fromiter((r[1] for r in rows), dtype=np.float32, count=len(rows))
    return keys, scores
