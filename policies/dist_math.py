"""Scheduling numbers from a request's output-length distribution: the Gittins index and
the expected remaining processing time (SERPT), given its age, plus the log-normal
discretised onto the bins that the oracle distributions are made of.

X is a request's total output length in tokens, with probability p_k on the support
point s_k = SUPPORT_TOKENS[k] of each bin (policies/lengthdist.py); its age a is the
number of tokens it has generated. Knowing that it has not finished, X > a.

Gittins index (the service policy that minimises mean response time for a single
server with known length distributions and preemption: Gittins 1989; Aalto, Ayesta and
Righter 2009; Scully and Harchol-Balter's SOAP, 2018):

    G(a) = max over thresholds x_j > a of  P(X <= x_j | X > a) / E[min(X, x_j) - a | X > a]

the best ratio of "chance to finish within the next stretch of service" to "expected
service spent on that stretch". Serve the highest index first.

With reverse cumulative sums, computed once per distribution,
    T_k = sum_{i >= k} p_i            T_K = 0
    U_k = sum_{i >= k} p_i s_i        U_K = 0
    W_j = s_j T_{j+1} - U_{j+1}
and k0 the first support index with s_k0 > a, S = T_k0, the conditioning cancels:
    P(X <= x_j, X > a)           = S - T_{j+1}
    E[min(X, x_j) - a ; X > a]   = sum_{k0<=i<=j} p_i (s_i - a) + (s_j - a) T_{j+1}
                                 = W_j + (U_k0 - a S)
so G(a) = max_{j >= k0} (S - T_{j+1}) / (W_j + U_k0 - a S): one vector expression over
the K - k0 thresholds left, O(NUM_BINS) per request and step, after an O(log NUM_BINS)
search for k0. SERPT(a) = E[X - a | X > a] = U_k0 / S - a is O(1) after the search.

Between two support points (k0 fixed) the numerators stay put and every denominator
falls by S per token, so G(a) only rises and SERPT(a) only falls, token by token (also
in floating point: the arithmetic is monotone in a). They jump only when the age
reaches a support point: the request did not finish there, and the mass it had there
is gone. `at_support` gives those post-jump values, the worst of each stretch, which is
what a policy needs to know how long a running request keeps its place.

Past all the mass (a >= the largest support point with p > 0), the distribution says
nothing. Then the request is taken to end at the next point of the grid, one more bin
(the next support point; past the last one, the bins' geometric ratio, about 1.3,
continued): remaining = next_point(a) - a, G = 1 / remaining, SERPT = remaining. Each
time that guess fails the next one is a bin further, so the assumed remaining length
grows in proportion to the age (about 30% of it), as with a Pareto tail, while the
index rises towards the end of each bin as SRPT's would.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from policies.lengthdist import BIN_EDGES, NUM_BINS, SUPPORT_TOKENS, bin_of

K = NUM_BINS
SUPPORT = SUPPORT_TOKENS.astype(np.float64)
_SUPPORT_LIST = [int(s) for s in SUPPORT_TOKENS]
_S_LAST = _SUPPORT_LIST[-1]
# Past the last support point the grid goes on with the ratio of the last bin's edges.
TAIL_RATIO = float(BIN_EDGES[-1] / BIN_EDGES[-2])
_LOG_RATIO = math.log(TAIL_RATIO)
MAX_GRID_TOKENS = 2**50  # no request gets this old; horizons give up here


def _grid(m: int) -> int:
    """The m-th grid point past the last support point (m >= 1)."""
    return round(_S_LAST * TAIL_RATIO**m)


def next_point(age: int) -> int:
    """The smallest grid point above age: a support point, or past the last one, the
    bins' geometric progression continued."""
    if age < _S_LAST:
        return _SUPPORT_LIST[bisect_right(_SUPPORT_LIST, age)]
    m = max(1, math.floor(math.log(age / _S_LAST) / _LOG_RATIO))
    while _grid(m) <= age:
        m += 1
    return _grid(m)


@dataclass(slots=True)
class LengthDist:
    """A distribution over SUPPORT_TOKENS with the sums the index needs (O(NUM_BINS)
    to build, once per request), and the index's terms for the stretch between two
    support points it was last asked about (a running request asks at every token)."""

    p: np.ndarray  # [K], normalised
    tail_p: np.ndarray  # [K+1]  T_k = P(X >= s_k)
    tail_ps: np.ndarray  # [K+1] U_k = E[X ; X >= s_k]
    w: np.ndarray  # [K]       W_j = s_j T_{j+1} - U_{j+1}
    last: int  # index of the last support point with mass
    _stretch: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_probs(cls, probs: np.ndarray) -> LengthDist:
        """From NUM_BINS non-negative weights with a positive sum (normalised here)."""
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (K,):
            raise ValueError(f"a length distribution has {K} bins, got shape {p.shape}")
        if not (np.isfinite(p).all() and (p >= 0).all() and p.sum() > 0):
            raise ValueError("probabilities must be finite, >= 0 and not all 0")
        p = p / p.sum()
        # Summed from the long end, so that small tail masses keep their precision.
        tail_p = np.concatenate((np.cumsum(p[::-1])[::-1], [0.0]))
        tail_ps = np.concatenate((np.cumsum((p * SUPPORT)[::-1])[::-1], [0.0]))
        w = SUPPORT * tail_p[1:] - tail_ps[1:]
        last = int(np.flatnonzero(p > 0)[-1])
        return cls(p, tail_p, tail_ps, w, last)

    def first_above(self, age: int) -> int:
        """k0: the index of the first support point above age (K when none)."""
        return bisect_right(_SUPPORT_LIST, age)

    def gittins(self, age: int) -> float:
        """The Gittins index at this age: O(NUM_BINS)."""
        k0 = self.first_above(age)
        if k0 > self.last:
            return 1.0 / (next_point(age) - age)
        st = self._stretch
        if st is None or st[0] != k0:
            s = self.tail_p[k0]
            st = self._stretch = (k0, s, s - self.tail_p[k0 + 1 :], self.w[k0:], self.tail_ps[k0])
        _, s, num, w, u = st
        return float((num / (w + (u - age * s))).max())

    def serpt(self, age: int) -> float:
        """E[X - age | X > age]: O(log NUM_BINS)."""
        k0 = self.first_above(age)
        if k0 > self.last:
            return float(next_point(age) - age)
        return float(self.tail_ps[k0] / self.tail_p[k0] - age)

    def conditional(self, age: int) -> np.ndarray:
        """P(X = s_k | X > age) for every k (all zero past the mass)."""
        q = np.where(SUPPORT > age, self.p, 0.0)
        total = q.sum()
        return q / total if total > 0 else q

    def gittins_at_support(self) -> np.ndarray:
        """G(s_m) for every support point s_m: the index just after the age reaches s_m,
        the lowest of the stretch up to the next support point. O(NUM_BINS^2), vectorised."""
        out = np.empty(K)
        m = np.arange(K)
        inside = m + 1 <= self.last  # k0 = m + 1 at age s_m
        rows = m[inside]
        if len(rows):
            k0 = rows + 1
            s = self.tail_p[k0]
            num = s[:, None] - self.tail_p[None, 1:]
            den = self.w[None, :] + (self.tail_ps[k0] - SUPPORT[rows] * s)[:, None]
            ok = m[None, :] >= k0[:, None]
            ratio = np.divide(num, den, out=np.full(num.shape, -np.inf), where=ok)
            out[rows] = ratio.max(axis=1)
        out[~inside] = 1.0 / self._tail_remaining(m[~inside])
        return out

    def serpt_at_support(self) -> np.ndarray:
        """SERPT(s_m) for every support point s_m (the highest of its stretch)."""
        out = np.empty(K)
        m = np.arange(K)
        inside = m + 1 <= self.last
        k0 = m[inside] + 1
        out[inside] = self.tail_ps[k0] / self.tail_p[k0] - SUPPORT[inside]
        out[~inside] = self._tail_remaining(m[~inside])
        return out

    @staticmethod
    def _tail_remaining(m: np.ndarray) -> np.ndarray:
        nxt = np.array([next_point(int(SUPPORT_TOKENS[i])) for i in m], dtype=np.float64)
        return nxt - SUPPORT[m]


def gittins_index(probs: np.ndarray, age: int = 0) -> float:
    """The Gittins index of a length distribution at an age (see the module doc)."""
    return LengthDist.from_probs(probs).gittins(age)


def serpt(probs: np.ndarray, age: int = 0) -> float:
    """Expected remaining processing time E[X - age | X > age] in tokens."""
    return LengthDist.from_probs(probs).serpt(age)


def lognormal_on_bins(
    mu: np.ndarray, sigma: np.ndarray | float, max_tokens: int | None = None
) -> np.ndarray:
    """[n, NUM_BINS] probabilities of log-normal output lengths, ln(Y) ~ N(mu, sigma^2),
    with Y rounded to whole tokens: bin k gets P(BIN_EDGES[k] - 0.5 <= Y < BIN_EDGES[k+1]
    - 0.5), the first bin also everything below, the last everything above (bin_of's
    rule), so a tiny sigma puts all the mass in bin_of(round(exp(mu))).

    max_tokens: the law of a draw redrawn until its rounded value lies in [1, max_tokens]
    (Y conditioned on [0.5, max_tokens + 0.5)); where that interval holds no mass in
    floating point, all of it goes to the bin of the nearest allowed length."""
    mu = np.asarray(mu, dtype=np.float64)[:, None]
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), mu.shape[:1])[:, None]
    n = len(mu)
    lo_cut, hi_cut = -np.inf, np.inf
    if max_tokens is not None:
        lo_cut, hi_cut = math.log(0.5), math.log(max_tokens + 0.5)
    cuts = np.log(BIN_EDGES[1:-1] - 0.5)
    lo = np.concatenate((np.full((n, 1), -np.inf), np.broadcast_to(cuts, (n, K - 1))), axis=1)
    hi = np.concatenate((np.broadcast_to(cuts, (n, K - 1)), np.full((n, 1), np.inf)), axis=1)
    lo, hi = np.maximum(lo, lo_cut), np.minimum(hi, hi_cut)
    zlo, zhi = (lo - mu) / sigma, (hi - mu) / sigma
    from scipy.special import ndtr  # here: importing the policies must not load scipy

    # Upper tails through the survival function, so that far bins keep their precision.
    p = np.where(zlo > 0, ndtr(-zlo) - ndtr(-zhi), ndtr(zhi) - ndtr(zlo))
    p = np.where(hi > lo, p, 0.0)
    if max_tokens is not None:
        total = p.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0
        if empty.any():
            nearest = np.clip(np.round(np.exp(mu[empty, 0])), 1, max_tokens)
            p[empty] = 0.0
            p[np.flatnonzero(empty), bin_of(nearest.astype(np.int64))] = 1.0
            total = p.sum(axis=1, keepdims=True)
        p = p / total
    return p
