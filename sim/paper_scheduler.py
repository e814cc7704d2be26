"""The paper's scheduler: vllm-ltr on vLLM 0.4.1 (mode "ltr-paper").

Every step all requests (running, swapped, waiting) are sorted together by the policy;
the batch fills in that order and stops at the first request that does not fit; a
request that needs blocks swaps out (or recomputes) the lowest-ranked resident requests
ranked below it. Requests holding blocks but not chosen sit idle on the GPU.
"""

from __future__ import annotations

import math

from sim.request import RUNNING, SWAPPED, WAITING, SimRequest
from sim.scheduler import Scheduler, StepPlan


class PaperScheduler(Scheduler):
    stretch_before_plan = False
    reranks_running = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heap_waiting = False  # the whole queue is sorted every step
        self.swap = self.cfg.preemption != "recompute"
        # Set by schedule(): whether the step repeats as a decode stretch if nothing
        # finishes, and the policy's horizon when it applies.
        self.steady = False
        self.horizon_steps = math.inf
        self.horizon_until_s = math.inf

    def schedule(self) -> StepPlan:
        kv, g = self.kv, self.clock.g
        self.unlazy_all()
        self.prefilling.clear()
        cand = list(self.running.values()) + list(self.swapped.values())
        cand += list(self.waiting.values())
        order = sorted(cand, key=self.rank)
        pos = {r.idx: i for i, r in enumerate(order)}
        budget, seqs = self.budget_tokens, 0
        plan = StepPlan()
        chosen: list[tuple[SimRequest, int]] = []
        chosen_ids: set[int] = set()
        reserved = 0  # the chosen decoders' blocks, taken below through the decode set
        for r in order:
            if budget == 0 or seqs == self.max_seqs:
                break
            fit = self._measure(r, budget)
            if fit is None:
                break
            hit, evictable, n, swap_in, new = fit
            while swap_in + new + evictable > kv.free - reserved:
                holders = [
                    h
                    for h in self.running.values()
                    if h.idx not in chosen_ids and pos[h.idx] > pos[r.idx] and h.blocks
                ]
                if not holders:
                    break
                victim = max(holders, key=lambda h: pos[h.idx])
                plan.swapped_blocks += self.preempt(victim, swap=self.swap)
                plan.preempted += 1
                if hit:  # the victim may have been the last holder of a block r hits
                    hit, evictable, n, swap_in, new = self._measure(r, budget)
            if swap_in + new + evictable > kv.free - reserved:
                break
            if r.state == SWAPPED:
                plan.swapped_blocks += swap_in
                del self.swapped[r.idx]
                kv.take(swap_in)
                r.blocks, r.cpu_blocks = swap_in, 0
                r.state = RUNNING
                self.running[r.idx] = r
            elif r.state == WAITING:
                del self.waiting[r.idx]
                if hit:
                    kv.admit_hit(r, hit)
                if r.cached_tokens < 0:
                    r.cached_tokens = hit * kv.block_size
                plan.cached_tokens += hit * kv.block_size
                r.state = RUNNING
                self.running[r.idx] = r
            if r.decoding:
                reserved += new
            else:
                kv.allocate(r, new, r.num_computed + n)
            chosen.append((r, n))
            chosen_ids.add(r.idx)
            budget -= n
            seqs += 1
        for r, _n in chosen:
            if r.decoding:
                self.decode.enter(r, g)
        kv.take(self.decode.allocations(g))
        others = [(r, n) for r, n in chosen if not r.decoding]
        # Requests holding blocks but not chosen this step sit idle on the GPU.
        for r in self.running.values():
            if r.idx not in chosen_ids:
                self.prefilling[r.idx] = r
        for r, _ in others:
            self.prefilling[r.idx] = r
        plan.work = others
        self.steady = (
            not others
            and not plan.preempted
            and not plan.swapped_blocks
            and len(chosen) == len(self.running)
        )
        self.horizon_steps = self.horizon_until_s = math.inf
        if self.steady and self.has_horizon:
            # The order this step used must still hold after it, or the next step differs.
            h_steps, h_s = self.horizon()
            self.horizon_steps, self.horizon_until_s = h_steps, self.clock.now + h_s
        return plan

    def _measure(self, r: SimRequest, budget: int):
        """(blocks hit, of them free, tokens, blocks to swap in, new blocks) for r now;
        None when r's prefill cannot be chunked and does not fit the budget."""
        kv = self.kv
        hit, evictable = (0, 0) if r.state != WAITING else kv.lookup(r)
        n = r.num_tokens - r.num_computed - hit * kv.block_size
        if n > 1 and not self.cfg.chunked_prefill and n > budget:
            return None
        n = min(n, budget)
        swap_in = r.cpu_blocks if r.state == SWAPPED else 0
        held = swap_in or r.blocks
        new = kv.blocks_for(r.num_computed + hit * kv.block_size + n) - held - hit
        return hit, evictable, n, swap_in, new

    def stretch_blocked(self) -> bool:
        return False  # repeats_as_stretch() already said the batch repeats

    def repeats_as_stretch(self, dispatch_due: bool) -> bool:
        return self.steady and self.still_steady(dispatch_due)

    def still_steady(self, arrival_due: bool) -> bool:
        """After the step ran: will the same batch repeat? The fill stopped for a reason
        decode steps cannot undo (order exhausted, budget or seats full, or blocks short
        with nothing below to swap out), nothing arrives and nothing idles on the GPU."""
        if self.has_horizon and not (
            self.horizon_steps > 1 and self.clock.now < self.horizon_until_s
        ):
            return False
        return (
            not self.prefilling and all(r.lazy for r in self.running.values()) and not arrival_due
        )
