"""The paged KV cache: the block pool, and vLLM V1's automatic prefix cache over it.

Knows nothing of policy. Without prefix caching it only counts free blocks. With it, as
vLLM V1 does (vllm/v1/core/block_pool.py, kv_cache_manager.py, release 0.10+):
- a full prompt block is known by its content key (sim/prefix_keys.py) and is cached
  from the step it is scheduled in, so later requests (even in the same step) hit it;
- a new request takes the longest run of its leading full blocks that are cached, at
  most (tokens - 1) // block_size of them: vLLM always computes the last token;
- blocks are reference-counted; a freed block keeps its content and stays hit-able in
  the free queue until a new block is needed: blocks are taken from the head, a freed
  request's full blocks are appended at the tail in reverse order (its last block is
  evicted first), and a hit takes a free cached block out of the queue; its blocks that
  are not full (vLLM never hashes them) go to the head, to be reused first (vLLM 0.32
  block_pool.free_blocks: "LIFO reuse of non-cached blocks");
- a request preempted by recompute leaves all its full blocks cached, so it can hit its
  own work when it is admitted again; a finished turn of a session leaves the blocks that
  its next turn's prompt repeats (the answer's blocks are the next prompt's).
Blocks whose content no later request can ask for are kept as anonymous counts, which
changes no hit and keeps the common case cheap. Where vLLM would compute a second copy of
a block already cached (a hit run broken earlier), the copy here is anonymous.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from sim.prefix_keys import KeyTable


class KVCacheManager:
    """Free and cached blocks of one engine's pool; requests hold logical block tables."""

    def __init__(
        self,
        num_gpu_blocks: int,
        block_size: int,
        prefix_caching: bool = False,
        keys: KeyTable | None = None,
        successor: np.ndarray | None = None,
        total_tokens: np.ndarray | None = None,
    ) -> None:
        self.num_gpu_blocks = num_gpu_blocks
        self.block_size = block_size
        self.free = num_gpu_blocks  # never used, or cached with no holder (evictable)
        self.enabled = prefix_caching
        self.evicted = 0  # cached blocks reused for new content, over the run
        # key -> [holders, token]; token is the key's place in the free queue, -1 when held
        self._cache: dict[int, list[int]] = {}
        # FIFO of free blocks: [n] for a run of n anonymous blocks, (key, token) for a cached one
        self._queue: deque = deque([[num_gpu_blocks]])
        self._token = 0
        self._cached_free = 0  # cached blocks in the free queue
        n = len(successor) if successor is not None else (0 if keys is None else len(keys.count))
        self._keys = keys if keys is not None else KeyTable.empty(n)
        self._succ = successor if successor is not None else np.full(n, -1, np.int64)
        self.shared_len = self._shared_runs(total_tokens) if prefix_caching else None
        # The same as a list: read per admission attempt, where numpy's scalar access costs.
        self._shared = self.shared_len.tolist() if prefix_caching else None

    # ----------------------------------------------------------- accounting
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def take(self, n: int) -> None:
        """n fresh blocks from the free pool (the caller checked n <= free)."""
        self.free -= n
        if not self.enabled or not n:
            return
        if self._cached_free:
            self._evict(n)
            return
        # No cached block is free: every free block is anonymous, and their order in the
        # queue tells nothing, so the queue is one run of them (stale entries dropped).
        q = self._queue
        if len(q) == 1 and type(q[0]) is list:
            q[0][0] = self.free
        else:
            q.clear()
            q.append([self.free])

    def take_per_step(self, alloc: np.ndarray) -> np.ndarray:
        """Blocks for consecutive steps, alloc[j] at step j; returns the cached blocks each
        step evicted. Steps whose blocks all come from an anonymous run at the queue's head
        are taken together; a step that reaches a cached block is taken alone."""
        evicted = np.zeros(len(alloc), np.int64)
        if not self.enabled:
            self.free -= int(alloc.sum())
            return evicted
        cum = np.cumsum(alloc)
        j, base = 0, 0
        while j < len(alloc):
            if self._cached_free == 0:
                self.take(int(cum[-1]) - base)
                break
            run = self._head_anonymous()
            m = int(np.searchsorted(cum, base + run, side="right"))
            if m > j:
                self.take(int(cum[m - 1]) - base)
                base, j = int(cum[m - 1]), m
                continue
            before = self.evicted
            self.take(int(alloc[j]))
            evicted[j] = self.evicted - before
            base += int(alloc[j])
            j += 1
        return evicted

    def _head_anonymous(self) -> int:
        """Blocks in the anonymous run at the free queue's head (0 if a cached block is
        next); stale entries of blocks since hit or evicted are dropped on the way."""
        q, cache = self._queue, self._cache
        while q:
            item = q[0]
            if type(item) is list:
                return item[0]
            e = cache.get(item[0])
            if e is not None and e[1] == item[1] and e[0] == 0:
                return 0
            q.popleft()
        return 0

    def give(self, n: int) -> None:
        """n blocks back to the pool whose contents nobody will ask for."""
        if self.enabled:
            self._free_anonymous(n)
        else:
            self.free += n

    # --------------------------------------------------------------- keys
    def key_at(self, idx: int, pos: int) -> int:
        """Content key of request idx's block pos (its own prompt, then its next turn's)."""
        k = self._keys
        if pos < k.count[idx]:
            return int(k.keys[k.start[idx] + pos])
        s = int(self._succ[idx])
        if s >= 0 and pos < k.count[s]:
            return int(k.keys[k.start[s] + pos])
        return -1 - (idx << 32) - pos  # content of this request alone

    def keys_of(self, r) -> list[int]:
        """Request r's block keys as far as its prompt and its next turn's prompt go (then
        key_at gives its own), cached on r: the lists the hot loops walk."""
        if r.keys is None:
            k, i = self._keys, r.idx
            keys = k.keys[k.start[i] : k.start[i] + k.count[i]].tolist()
            s = int(self._succ[i])
            if s >= 0 and k.count[s] > len(keys):
                keys += k.keys[k.start[s] + len(keys) : k.start[s] + k.count[s]].tolist()
            r.keys = keys
        return r.keys

    def _shared_runs(self, total_tokens: np.ndarray | None) -> np.ndarray:
        """Per request, how many leading prompt blocks another request may hit: keys that
        occur twice in the trace, or that a previous turn leaves behind for this one."""
        k = self._keys
        n = len(k.count)
        if len(k.keys) == 0:
            return np.zeros(n, np.int64)
        _, inv, counts = np.unique(k.keys, return_inverse=True, return_counts=True)
        shared = counts[inv.reshape(-1)] > 1
        if total_tokens is not None:
            for i in np.flatnonzero(self._succ >= 0):
                s = int(self._succ[i])
                lo = int(k.count[i])
                hi = min(int(k.count[s]), (int(total_tokens[i]) - 1) // self.block_size)
                if hi > lo:
                    shared[k.start[s] + lo : k.start[s] + hi] = True
        req = np.repeat(np.arange(n), k.count)
        pos = np.arange(len(k.keys)) - k.start[req]
        first_miss = np.where(shared, np.iinfo(np.int64).max, pos)
        run = k.count.copy()
        has = k.count > 0
        if has.any():
            mins = np.minimum.reduceat(first_miss, k.start[has])
            run[has] = np.minimum(k.count[has], mins)
        return run

    # ------------------------------------------------------------ requests
    def lookup(self, r) -> tuple[int, int]:
        """(blocks hit, how many of them are free) for request r before admission."""
        if not self.enabled or r.num_computed:
            return 0, 0
        if not r.self_cached and self._shared[r.idx] == 0:
            return 0, 0
        limit = (r.num_tokens - 1) // self.block_size
        cache = self._cache
        keys = self.keys_of(r)
        hit = evictable = 0
        while hit < limit:
            e = cache.get(keys[hit] if hit < len(keys) else self.key_at(r.idx, hit))
            if e is None:
                break
            evictable += e[0] == 0
            hit += 1
        return hit, evictable

    def admit_hit(self, r, hit: int) -> None:
        """r takes its first `hit` blocks from the cache (lookup() just found them)."""
        cache = self._cache
        keys = self.keys_of(r)
        held = r.held
        for pos in range(hit):
            key = keys[pos] if pos < len(keys) else self.key_at(r.idx, pos)
            e = cache[key]
            if e[0] == 0:
                self.free -= 1
                self._cached_free -= 1
                e[1] = -1
            e[0] += 1
            held.append((pos, key))
        r.blocks = hit
        r.num_computed = hit * self.block_size
        r.registered = hit

    def allocate(self, r, need: int, computed_after: int) -> None:
        """r gets `need` fresh blocks for tokens up to computed_after; the prompt blocks
        that this fills and that others may hit become cached now, as vLLM caches them."""
        self.take(need)
        r.blocks += need
        if not self.enabled:
            return
        upto = min(computed_after // self.block_size, self._shared[r.idx])
        lo = r.registered
        if upto <= lo:
            return
        cache = self._cache
        hold = r.held.append
        for pos, key in enumerate(self.keys_of(r)[lo:upto], lo):
            if key not in cache:
                cache[key] = [1, -1]
                hold((pos, key))
        r.registered = upto

    def freed_on_release(self, r, blocks: int) -> int:
        """At least how many of r's `blocks` go back to the pool when r releases them:
        not the cached blocks that other requests hold too."""
        if not self.enabled or not r.held:
            return blocks
        cache = self._cache
        return blocks - sum(1 for _, key in r.held if cache[key][0] > 1)

    def release(self, r, keep_all: bool = False, keep_next_turn: bool = False) -> None:
        """r gives back its blocks. keep_all: every full block stays cached (recompute
        preemption); keep_next_turn: those its session's next turn repeats stay cached."""
        if not self.enabled:
            self.free += r.blocks
            r.blocks = 0
            return
        extra: dict[int, int] = {}
        full = min(r.num_computed // self.block_size, r.blocks)
        self._free_front(r.blocks - full)  # not full: never hashed, reused first
        held: dict[int, int] = {}
        if keep_all or keep_next_turn:
            held = dict(r.held)
            lo = 0 if keep_all else int(self._keys.count[r.idx])
            for pos in range(lo, full):
                if pos not in held:
                    key = self.key_at(r.idx, pos)
                    if key >= 0 or keep_all:
                        extra[pos] = key
            r.self_cached = r.self_cached or keep_all
        if not r.held and not extra:
            self._free_anonymous(full)
        elif not extra:
            self._release_held(r.held, full)
        else:
            cache = self._cache
            prev = full  # full blocks go back last first: the tail is evicted first
            for pos in sorted(held.keys() | extra.keys(), reverse=True):
                self._free_anonymous(prev - pos - 1)
                prev = pos
                if pos in held:
                    e = cache[held[pos]]
                    e[0] -= 1
                    if e[0] == 0:
                        self._free_cached(held[pos], e)
                elif extra[pos] in cache:
                    self._free_anonymous(1)  # a second copy of a cached block
                else:
                    e = cache[extra[pos]] = [0, -1]
                    self._free_cached(extra[pos], e)
            self._free_anonymous(prev)
        r.held.clear()
        r.blocks = 0
        r.registered = 0

    def _release_held(self, held: list[tuple[int, int]], full: int) -> None:
        """release()'s common case, its loop with the queue's steps inlined: r's full
        blocks go back last first, the cached ones it held (ascending positions, as
        admit_hit and allocate append them) one by one, the others as anonymous runs."""
        q, cache = self._queue, self._cache
        token, freed, cached_free = self._token, 0, 0
        prev = full
        for pos, key in reversed(held):
            gap = prev - pos - 1
            if gap > 0:
                freed += gap
                if q and type(q[-1]) is list:
                    q[-1][0] += gap
                else:
                    q.append([gap])
            prev = pos
            e = cache[key]
            e[0] -= 1
            if e[0] == 0:
                e[1] = token
                q.append((key, token))
                token += 1
                cached_free += 1
        self._token = token
        self._cached_free += cached_free
        self.free += freed + cached_free
        self._free_anonymous(prev)

    # --------------------------------------------------------------- queue
    def _free_anonymous(self, n: int) -> None:
        if n <= 0:
            return
        self.free += n
        q = self._queue
        if q and type(q[-1]) is list:
            q[-1][0] += n
        else:
            q.append([n])

    def _free_front(self, n: int) -> None:
        if n <= 0:
            return
        self.free += n
        q = self._queue
        if q and type(q[0]) is list:
            q[0][0] += n
        else:
            q.appendleft([n])

    def _free_cached(self, key: int, e: list[int]) -> None:
        self._cached_free += 1
        e[1] = self._token
        self._queue.append((key, self._token))
        self._token += 1
        self.free += 1

    def _evict(self, n: int) -> None:
        q, cache = self._queue, self._cache
        evicted = 0
        while n:
            item = q[0]
            if type(item) is list:
                if item[0] > n:
                    item[0] -= n
                    break
                n -= item[0]
                q.popleft()
                continue
            q.popleft()
            key, token = item
            e = cache.get(key)
            if e is not None and e[1] == token and e[0] == 0:
                del cache[key]
                evicted += 1
                n -= 1
        self._cached_free -= evicted
        self.evicted += evicted

    def check(self) -> None:
        """Assert the pool's invariants (tests): free = queued blocks, never over the pool."""
        anon = sum(i[0] for i in self._queue if type(i) is list)
        cached = sum(
            1
            for i in self._queue
            if type(i) is tuple and self._cache.get(i[0], [None, None])[1] == i[1]
        )
        assert 0 <= self.free <= self.num_gpu_blocks, self.free
        if self.enabled:
            assert anon + cached == self.free, (anon, cached, self.free)
            assert cached == self._cached_free, (cached, self._cached_free)
            assert all(e[0] >= 0 for e in self._cache.values())
