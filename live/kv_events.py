"""What each engine's prefix cache holds, read from vLLM's KV events.

vLLM (0.32: vllm/distributed/kv_events.py, vllm/v1/core/block_pool.py) publishes, when
`kv_events_config` enables it, a KVEventBatch over ZMQ after every step that changed the
cache: BlockStored (new full blocks: their hashes, the parent block's hash, their token
ids, the block size), BlockRemoved (evicted hashes) and AllBlocksCleared (a reset). This
is what llm-d's precise prefix scorer consumes. vLLM's block hashes are chained over the
blocks before them and seeded per deployment, so the index does not recompute them: it
keys each block by (its parent's hash, its tokens), the chain vLLM hashed, and looks a
prompt up by walking its full blocks through that chain.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

ROOT = None  # the parent of a prompt's first block


@dataclass
class KVBlockIndex:
    """The blocks one engine holds in its prefix cache, as its KV events tell them.

    A hash may be held by several blocks at once (two requests that computed the same
    block in one step each cache it), so it is counted: stored +1, removed -1.
    """

    block_size: int
    held: Counter = field(default_factory=Counter)  # block hash -> blocks holding it
    child: dict[tuple[Any, tuple[int, ...]], Any] = field(default_factory=dict)

    def apply(self, events: Iterable[Any]) -> None:
        """Apply decoded events (vLLM's BlockStored, BlockRemoved, AllBlocksCleared)."""
        for event in events:
            kind = type(event).__name__
            if kind == "BlockStored":
                self.stored(
                    event.block_hashes, event.parent_block_hash, event.token_ids, event.block_size
                )
            elif kind == "BlockRemoved":
                self.removed(event.block_hashes)
            elif kind == "AllBlocksCleared":
                self.clear()

    def stored(
        self, block_hashes: Sequence[Any], parent: Any, token_ids: Sequence[int], block_size: int
    ) -> None:
        """Full blocks of `block_size` tokens each, the first after `parent`. Blocks of
        another size (vLLM's partial entries of hybrid models) are not prompt prefixes
        this engine matches by full blocks, and are left out."""
        if block_size != self.block_size:
            return
        for k, block_hash in enumerate(block_hashes):
            tokens = tuple(token_ids[k * block_size : (k + 1) * block_size])
            if len(tokens) < block_size:
                break
            self.child[(parent, tokens)] = block_hash
            self.held[block_hash] += 1
            parent = block_hash

    def removed(self, block_hashes: Iterable[Any]) -> None:
        for block_hash in block_hashes:
            if self.held[block_hash] <= 1:
                self.held.pop(block_hash, None)
            else:
                self.held[block_hash] -= 1

    def clear(self) -> None:
        self.held.clear()
        self.child.clear()

    def cached_prefix_tokens(self, prompt_ids: Sequence[int]) -> int:
        """Leading prompt tokens vLLM would take from the cache if the request were
        admitted now: the longest run of its full blocks held, over all but the prompt's
        last token (vLLM computes at least that one: kv_cache_manager.py,
        max_cache_hit_length = num_tokens - 1)."""
        usable = (len(prompt_ids) - 1) // self.block_size
        parent, hit = ROOT, 0
        for k in range(usable):
            tokens = tuple(prompt_ids[k * self.block_size : (k + 1) * self.block_size])
            block_hash = self.child.get((parent, tokens))
            if block_hash is None or self.held[block_hash] <= 0:
                break
            parent, hit = block_hash, hit + self.block_size
        return hit

    @property
    def blocks_held(self) -> int:
        return sum(1 for n in self.held.values() if n > 0)


@dataclass
class KVEventSubscriber:
    """Reads one engine's KV event stream (a ZMQ SUB socket) into its index, in the
    driver's event loop; counts batches lost (gaps in vLLM's sequence numbers)."""

    endpoint: str
    index: KVBlockIndex
    batches: int = 0
    lost_batches: int = 0
    _last_seq: int = -1
    _task: asyncio.Task | None = None
    _socket: Any = None

    def start(self) -> None:
        import zmq
        import zmq.asyncio

        self._socket = zmq.asyncio.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(self.endpoint)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        import msgspec
        from vllm.distributed.kv_events import KVEventBatch

        decoder = msgspec.msgpack.Decoder(KVEventBatch)
        while True:
            _topic, seq_bytes, payload = await self._socket.recv_multipart()
            seq = int.from_bytes(seq_bytes, "big", signed=True)
            if self._last_seq >= 0 and seq > self._last_seq + 1:
                self.lost_batches += seq - self._last_seq - 1
            self._last_seq = seq
            self.batches += 1
            self.index.apply(decoder.decode(payload).events)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close(linger=0)
