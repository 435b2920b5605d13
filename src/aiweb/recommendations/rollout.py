"""Recommenders under rollout (docs/rollout.md): the lists served, and the click-through
rate a rollout judges them on.

A list served to a user by a version under rollout is logged (``rec_served_lists``). Its
click-through is whether the user interacted (any interaction type) with one of its
items within :data:`CLICK_WINDOW` after it was served. The rate per variant is the share
of its lists with a click — a proportion, so the rollout's Wilson and Newcombe intervals
apply (a user who clicks twice on one list counts once). The same definition is the
offline "hit rate" of a top-N list (Deshpande & Karypis, 2004, ACM TOIS 22:143).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.recommendations.orm import SqlInteraction, SqlServedList
from aiweb.rollout.service import RolloutQuality

#: an interaction this long after a list was served still counts as its click
CLICK_WINDOW = timedelta(hours=24)
#: the most recent lists of a version a measurement reads
MAX_LISTS = 20_000


def log_served(
    sessions: sessionmaker[Session],
    model: str,
    version: int,
    user_id: str,
    items: Sequence[str],
    served_at: datetime,
) -> None:
    """Record one list served under a rollout."""
    with sessions.begin() as session:
        session.execute(
            insert(SqlServedList).values(
                model=model,
                version=version,
                user_id=user_id,
                items=list(items),
                served_at=served_at,
            )
        )


def ctr(
    sessions: sessionmaker[Session], model: str, version: int, since: datetime
) -> tuple[int, int]:
    """Click-through of the lists ``model:version`` served since ``since``.

    Returns:
        ``(lists with a click within 24 h, lists served)``, of the most recent
        :data:`MAX_LISTS` lists.
    """
    with sessions() as session:
        lists = session.execute(
            select(SqlServedList.user_id, SqlServedList.items, SqlServedList.served_at)
            .where(
                SqlServedList.model == model,
                SqlServedList.version == version,
                SqlServedList.served_at >= since,
            )
            .order_by(SqlServedList.served_at.desc())
            .limit(MAX_LISTS)
        ).all()
        if not lists:
            return 0, 0
        users = sorted({row.user_id for row in lists})
        events: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        for start in range(0, len(users), 500):
            for user_id, item_id, at in session.execute(
                select(
                    SqlInteraction.user_id, SqlInteraction.item_id, SqlInteraction.occurred_at
                ).where(
                    SqlInteraction.user_id.in_(users[start : start + 500]),
                    SqlInteraction.occurred_at >= since,
                )
            ):
                events[user_id].append((item_id, at))
    clicked = 0
    for user_id, items, served in lists:
        shown = set(items)
        if any(
            item in shown and served <= at <= served + CLICK_WINDOW
            for item, at in events.get(user_id, ())
        ):
            clicked += 1
    return clicked, len(lists)


#: what a recommender rollout is judged on (:attr:`aiweb.contract.Task.rollout_quality`)
QUALITY = RolloutQuality(metric="ctr", measure=ctr)
