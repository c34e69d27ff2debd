"""One re-list of one kind, fed page by page into the cache, with the replace-all diff done at the end from keys alone.

Listing 10,000 allocations in one answer means holding their JSON and every decoded dict at once before the cache
projects them down to the declared fields: a peak several times the cache itself. Paged, each page is applied to the
cache as it arrives (projected at once, its full dicts dropped with the page), and the only thing kept across pages
is the set of keys seen. When the last page is in, cached objects that no page held are removed, as a one-shot
`Cache.replace_all` would have removed them.

Pages are read at different raft indexes, so the list is no snapshot, and the hazards of that are handled here:

- **The list index is the FIRST page's.** An object changed or created after page 1 was read, with a key that sorts
  into page 1's range, is in no page at all; its change has a raft index above page 1's, so the event stream, started
  after page 1's index, delivers it. Started after the last page's index instead, it would skip that event and the
  cache would miss the change until the next re-list. Objects changed between pages that a later page does hold are
  announced twice (by the page and by the event); the cache's versions drop the older one.
- **Removals use the first page's index too.** An unseen object is removed, and its tombstone set, at that index: an
  object deleted and created again between pages gets a version above it, so its creation event is not refused.
- **Nothing newer is undone.** A cached object whose version is above the list's index is kept, as in `replace_all`.

Pure bookkeeping over the cache (no I/O), so it is tested without a network; the informer does the reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from nomad_operator.runtime.cache import Cache
from nomad_operator.runtime.reconciler import ObjectKey, key_of


class PageListener(Protocol):
    """Told about each object that appeared, changed or vanished (the informer's `ChangeListener`)."""

    def __call__(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None: ...


class PagedRelist:
    """Applies one kind's list pages to the cache as they come, and removes what no page held at `finish()`."""

    __slots__ = ("_cache", "_listener", "_seen", "added", "changed", "first_index", "kind", "last_index", "removed")

    def __init__(self, cache: Cache, kind: str, *, listener: PageListener | None) -> None:
        self._cache = cache
        self._listener = listener
        self._seen: set[ObjectKey] = set()
        self.kind = kind
        self.first_index: int | None = None
        self.last_index = 0
        self.added = 0
        self.changed = 0
        self.removed = 0

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.removed

    def begin_page(self, index: int) -> None:
        """Note a page's `X-Nomad-Index` before its objects are applied."""
        if self.first_index is None:
            self.first_index = index
        self.last_index = max(self.last_index, index)

    def keep(self, key: ObjectKey) -> None:
        """The page lists `key` unchanged (same version as cached): it stays, and is not removed at the end."""
        self._seen.add(key)

    def apply_page(self, objects: Iterable[Mapping[str, Any]], *, index: int, since: float | None) -> None:
        """Apply a page's objects (stubs, or objects read in full) to the cache; announce the ones that changed it.

        Raises `CacheFull` or `UnidentifiableObject` from the cache: the pages applied before stay applied, and the
        caller lists again (the next list diffs from there).
        """
        cache, kind, listener, seen = self._cache, self.kind, self._listener, self._seen
        for obj in objects:
            key = key_of(kind, obj)
            seen.add(key)
            existed = cache.get(key) is not None
            if not cache.apply(kind, obj, index=index):
                continue  # unchanged, or older than what an event already cached
            if existed:
                self.changed += 1
            else:
                self.added += 1
            if listener is not None:
                listener(kind, obj, since=since)

    def finish(self, *, since: float | None) -> int:
        """Remove the cached objects that no page held (unless newer than the list); returns the list's index.

        The index is the first page's: the one the event stream must follow from (see the module docstring).
        """
        if self.first_index is None:
            raise RuntimeError(f"the {self.kind} list ended without a page")
        index, cache, kind, listener = self.first_index, self._cache, self.kind, self._listener
        for key in cache.keys(kind):
            if key in self._seen:
                continue
            obj = cache.get(key)
            if obj is None or not cache.apply(kind, obj, index=index, deleted=True):
                continue
            self.removed += 1
            if listener is not None:
                listener(kind, obj, since=since)
        self._seen = set()
        return index
