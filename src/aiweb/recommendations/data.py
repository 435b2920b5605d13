"""Interactions as a matrix: index users and items, de-duplicate, split by time.

Every interaction counts as a positive (implicit) signal, whatever its type or value:
the matrix holds 1.0 where a user interacted with an item. A user who interacted with an
item several times counts once, at the time of the first interaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import InvalidInputError

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ItemText:
    """What content-based models read about one item.

    Attributes:
        title: the item's title.
        text: longer description.
        categories: category names.
        tags: free-text tags.
        embedding: the sentence embedding of the item's document (float32 ``(dim,)``,
            L2-normalised; zero for an item without text) when training computed them
            for ``content-minilm``; else ``None``.
    """

    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    embedding: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Interactions:
    """Distinct (user, item) positives with the time of the first interaction.

    Attributes:
        user_ids: ``n_users`` external user ids; position = user index.
        item_ids: ``n_items`` external item ids (the catalogue); position = item index.
        users: int32 array ``(n,)`` of user indices.
        items: int32 array ``(n,)`` of item indices.
        times: float64 array ``(n,)``, Unix seconds (UTC).
    """

    user_ids: list[str]
    item_ids: list[str]
    users: IntArray
    items: IntArray
    times: FloatArray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def build(
        cls,
        user_ids: list[str],
        item_ids: list[str],
        times: list[float] | FloatArray,
        catalogue: list[str] | None = None,
    ) -> Interactions:
        """Index and de-duplicate raw interactions.

        Args:
            user_ids, item_ids, times: ``n`` interactions (times in Unix seconds).
            catalogue: item ids known besides those interacted with (items without
                interactions can still be recommended by content); they come first, in
                the order given.

        Returns:
            One row per distinct (user, item), at its earliest time, sorted by user, then
            time, then item index (so a user's rows are in time order).

        Raises:
            InvalidInputError: the three lists differ in length.
        """
        if not len(user_ids) == len(item_ids) == len(times):
            raise InvalidInputError("user_ids, item_ids and times differ in length")
        item_index: dict[str, int] = {}
        for item in catalogue or ():
            item_index.setdefault(item, len(item_index))
        for item in item_ids:
            item_index.setdefault(item, len(item_index))
        user_index: dict[str, int] = {}
        for user in user_ids:
            user_index.setdefault(user, len(user_index))
        u = np.fromiter((user_index[x] for x in user_ids), dtype=np.int32, count=len(user_ids))
        i = np.fromiter((item_index[x] for x in item_ids), dtype=np.int32, count=len(item_ids))
        t = np.asarray(times, dtype=np.float64)
        # earliest time per (user, item): sort by (user, item, time), keep the first
        order = np.lexsort((t, i, u))
        u, i, t = u[order], i[order], t[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        u, i, t = u[first], i[first], t[first]
        order = np.lexsort((i, t, u))
        return cls(
            user_ids=list(user_index),
            item_ids=list(item_index),
            users=u[order],
            items=i[order],
            times=t[order],
        )

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """The rows where ``mask`` holds, on the same user and item indices."""
        return Interactions(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[mask],
            items=self.items[mask],
            times=self.times[mask],
        )

    def histories(self) -> tuple[npt.NDArray[np.int64], IntArray]:
        """Every user's distinct items, oldest first, in CSR layout: ``(indptr, items)``,
        int64 ``(n_users + 1,)`` and int32 ``(n,)``; user ``u``'s items are
        ``items[indptr[u]:indptr[u + 1]]`` (rows must be sorted by user, then time, as
        :meth:`build` sorts them)."""
        counts = np.bincount(self.users, minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, self.items.astype(np.int32, copy=True)

    def matrix(self) -> sparse.csr_matrix:
        """float32 CSR ``(n_users, n_items)`` with 1.0 at every positive."""
        data = np.ones(len(self.users), dtype=np.float32)
        return sparse.csr_matrix(
            (data, (self.users, self.items)), shape=(self.n_users, self.n_items), dtype=np.float32
        )


def leave_last_out(data: Interactions, n_test: int = 5) -> npt.NDArray[np.bool_]:
    """Mark each user's last ``n_test`` distinct items (by time) as held out.

    The protocol of the issue: sort every user's interactions by time, hold out the last
    ``n_test``, train on the rest. Users with ``n_test`` interactions or fewer keep them
    all in training (they cannot be scored without training data). Ties in time are
    broken by item index, as :meth:`Interactions.build` sorts.

    Args:
        data: rows sorted by user then time (as :meth:`Interactions.build` returns).
        n_test: items held out per user.

    Returns:
        bool array ``(len(data),)``: ``True`` for held-out rows.

    Raises:
        InvalidInputError: ``n_test`` < 1.
    """
    if n_test < 1:
        raise InvalidInputError(f"n_test must be at least 1, not {n_test}")
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(data.users)) - starts[data.users]
    n = counts[data.users]
    return (n > n_test) & (position >= n - n_test)
