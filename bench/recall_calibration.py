"""Per-store self-calibration of the gate's threshold, simulated on the labelled set.

Run through `python bench/recall_eval.py --calibration` (it builds the stores, scores
every request with the *shipped* gate model, out of fold on tune/, and calls
`evaluate` here), so it can be re-run after the gate model is refitted.

The idea (issue 12, item 2's optional part; msc does Otsu over its score history): a
store sees only its own user's requests, and on people the gate has never met the
scores shift, so one global threshold fits some people badly. Each store could keep
the gate's best score of each request it answers and move its own threshold from that
history: no labels exist online, so the method must be unsupervised.

The simulation: every author of a half is one store, seeing their requests in the
file's order and in four seeded shuffles; each request is decided with the threshold
derived from the history *before* it (online), and hit and silent are scored per
author and averaged over authors (each person counts once, as the threshold fit does).
On tune/ the scores are leave-one-author-out probabilities and the reference
distribution (what "typical" scores are) comes from the other authors only, so no
author is calibrated against itself. Every method moves the threshold in logits:

    t = t0 + clip(w * beta * (stat(history) - stat_ref), -bound, +bound),
    w = n / (n + prior)            (n: requests with candidates so far)

so a young store (n below MIN_HISTORY) uses t0 exactly, the move grows with evidence
and can never exceed `bound`. Statistics tried: the mean and the median of the best
logit (a location shift), mean/sd standardization (the store's distribution mapped onto
the reference's), and Otsu's split of the history (relative to Otsu's split of the
reference). Parameters are chosen on tune/ only; held/ and held2/ are scored once,
with the parameters tune/ chose, for the record.

Two bounds come with it: each statistic computed on the store's *whole* history
(hindsight, not something a store could run), and per-author thresholds chosen *with
the labels* (the best any per-store threshold could do), so a method's gain can be read
against what is there to gain at all.

Measured in round 5 with the round-3 MiniLM gate (threshold 0.25), author-averaged:
tune/ CV fixed 0.790/0.803 (hit/silent); the best online method of each statistic
0.785-0.789 / 0.795-0.801, every grid preferring its smallest move; hindsight
0.782-0.791 / 0.791-0.812; the labelled ceiling 0.835/0.837. No statistic of a store's
scores tells which way its threshold should go (the best logits mix how often a person
asks something the store knows with how well their relevant requests score), so
self-calibration is not shipped (docs/recall.md, "Calibration").
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engram.recall import gate

MIN_HISTORY = 10  # fewer scored requests: the store's threshold is the fitted one
ORDERS = 5  # the file's order and 4 seeded shuffles
PRIORS = (10, 30, 100)
BETAS = (0.25, 0.5, 1.0)
BOUNDS = (0.5, 1.0, 2.0)
NOISE = 0.01  # a change in author-averaged min(hit, silent) smaller than this is noise


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a store meets it: who asked, whether a memory would help, the
    gate's best logit (None: no candidates), and its outcome at any threshold."""

    author: str
    relevant: bool
    top: float | None
    cuts: tuple[float, ...]  # the candidates' distinct probabilities, ascending
    ok: tuple[bool, ...]  # hit (relevant) or silent (not) at threshold cuts[i]; last: above all

    def success(self, threshold: float) -> bool:
        """The outcome only changes where the threshold crosses a candidate's
        probability: the admitted set at t is the one at the smallest cut >= t."""
        return self.ok[bisect.bisect_left(self.cuts, threshold)]


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def requests(
    rows: Sequence[tuple[str, set[str], list[gate.Candidate], dict[str, np.ndarray]]],
    base: gate.GateSettings,
) -> list[Request]:
    """rows: (author, relevant ids, candidates with their probabilities, vectors)."""
    out = []
    for author, relevant, cands, vectors in rows:
        cuts = tuple(sorted({c.score for c in cands}))
        ok = []
        for t in (*cuts, math.inf):
            fresh = [dataclasses.replace(c, injected=False, note="") for c in cands]
            fresh.sort(key=lambda c: (-c.score, c.id))
            decision = gate.decide(fresh, vectors, dataclasses.replace(base, min_score=t))
            chosen = {c.id for c in fresh if c.injected}
            ok.append(bool(chosen & relevant) if relevant else not decision.injected)
        top = logit(max(cuts)) if cuts else None
        out.append(Request(author, bool(relevant), top, cuts, tuple(ok)))
    return out


# -- statistics of a score history ---------------------------------------------------------


def otsu(x: np.ndarray, bins: int = 64) -> float:
    """The split maximizing the between-class variance of the history."""
    xs = np.sort(x)
    best, split = -1.0, float(np.median(xs))
    for t in np.linspace(xs[0], xs[-1], bins)[1:-1]:
        lo, hi = xs[xs < t], xs[xs >= t]
        if len(lo) < 2 or len(hi) < 2:
            continue
        v = len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2
        if v > best:
            best, split = float(v), float(t)
    return split


Stat = Callable[[np.ndarray], float]
STATS: dict[str, Stat] = {
    "mean": lambda x: float(x.mean()),
    "median": lambda x: float(np.median(x)),
    "otsu": otsu,
}


@dataclass(frozen=True, slots=True)
class Method:
    name: str  # "fixed", a STATS key (a location shift) or "standardize"
    beta: float = 0.0
    prior: float = 1.0
    bound: float = 0.0
    hindsight: bool = False

    def label(self) -> str:
        if self.name == "fixed":
            return "fixed"
        if self.hindsight:
            return f"{self.name} beta {self.beta}, whole history (hindsight)"
        return f"{self.name} beta {self.beta} prior {self.prior:g} bound {self.bound}"


@dataclass(frozen=True, slots=True)
class Reference:
    """What typical scores look like on people the model has not seen (author-averaged
    statistics of out-of-fold best logits)."""

    stats: dict[str, float]
    sd: float


def reference(tops_by_author: dict[str, list[float]]) -> Reference:
    arrays = [np.asarray(v) for v in tops_by_author.values() if len(v) >= MIN_HISTORY]
    stats = {name: float(np.mean([f(a) for a in arrays])) for name, f in STATS.items()}
    return Reference(stats, float(np.mean([a.std() for a in arrays])))


def shift(method: Method, history: list[float], ref: Reference, t0: float) -> float:
    """The threshold move in logits for a store with this history."""
    n = len(history)
    if method.name == "fixed" or n < MIN_HISTORY:
        return 0.0
    x = np.asarray(history)
    if method.name == "standardize":
        sd = max(float(x.std()), 1e-6)
        raw = float(x.mean()) + sd * (t0 - ref.stats["mean"]) / ref.sd - t0
    else:
        raw = STATS[method.name](x) - ref.stats[method.name]
    w = n / (n + method.prior)
    return max(-method.bound, min(method.bound, w * method.beta * raw))


# -- the simulation ----------------------------------------------------------------------------


def simulate(
    stream: list[Request], method: Method, ref: Reference, t0: float, seed: int
) -> tuple[float, float]:
    """Hit and silent of one store over ORDERS orders of its requests, online; a
    `hindsight` method decides every request with the store's whole history instead
    (a bound on what the statistic can do, not something a store could run)."""
    rng = random.Random(seed)
    hits, silents = [], []
    whole = [r.top for r in stream if r.top is not None]
    for o in range(ORDERS if not method.hindsight else 1):
        seq = stream if o == 0 else rng.sample(stream, len(stream))
        history: list[float] = list(whole) if method.hindsight else []
        hit = n_rel = silent = n_none = 0
        for r in seq:
            t = t0 + shift(method, history, ref, t0)
            ok = r.success(sigmoid(t))
            if r.relevant:
                n_rel, hit = n_rel + 1, hit + ok
            else:
                n_none, silent = n_none + 1, silent + ok
            if r.top is not None and not method.hindsight:
                history.append(r.top)
        hits.append(hit / max(n_rel, 1))
        silents.append(silent / max(n_none, 1))
    return float(np.mean(hits)), float(np.mean(silents))


def tops(stream: Sequence[Request]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in stream:
        if r.top is not None:
            out.setdefault(r.author, []).append(r.top)
    return out


def score_half(
    stream: list[Request], method: Method, t0: float, ref_pool: list[Request] | None = None
) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """Author-averaged hit and silent. ref_pool None: leave-one-author-out (the
    reference from this half's other authors); else the reference from ref_pool."""
    per = {}
    authors = sorted({r.author for r in stream})
    for i, author in enumerate(authors):
        others = ref_pool if ref_pool is not None else [r for r in stream if r.author != author]
        ref = reference(tops(others))
        per[author] = simulate([r for r in stream if r.author == author], method, ref, t0, i)
    return (
        float(np.mean([h for h, _ in per.values()])),
        float(np.mean([s for _, s in per.values()])),
        per,
    )


def ceiling(stream: list[Request]) -> tuple[float, float, dict[str, float]]:
    """Per-author thresholds chosen with the labels: the most any per-store threshold
    could give (maximize mean hit + lambda mean silent per author, lambda swept so that
    min(mean hit, mean silent) is largest)."""
    grid = np.arange(-5.0, 3.0, 0.1)
    authors = sorted({r.author for r in stream})
    table = {}
    for a in authors:
        mine = [r for r in stream if r.author == a]
        rel = [r for r in mine if r.relevant]
        none = [r for r in mine if not r.relevant]
        table[a] = [
            (
                float(np.mean([r.success(sigmoid(z)) for r in rel])) if rel else 0.0,
                float(np.mean([r.success(sigmoid(z)) for r in none])) if none else 0.0,
            )
            for z in grid
        ]
    best: tuple[float, float, float, dict[str, float]] | None = None
    for lam in np.arange(0.3, 3.0, 0.05):
        picks = {
            a: max(range(len(grid)), key=lambda i, a=a: table[a][i][0] + lam * table[a][i][1])
            for a in authors
        }
        h = float(np.mean([table[a][picks[a]][0] for a in authors]))
        s = float(np.mean([table[a][picks[a]][1] for a in authors]))
        if best is None or min(h, s) > min(best[0], best[1]):
            best = (h, s, float(lam), {a: round(float(grid[picks[a]]), 1) for a in authors})
    assert best is not None
    return best[0], best[1], best[3]


def methods() -> list[Method]:
    out = [Method("fixed")]
    for name in (*STATS, "standardize"):
        for beta, prior, bound in itertools.product(BETAS, PRIORS, BOUNDS):
            out.append(Method(name, beta, prior, bound))
        for beta in BETAS:
            out.append(Method(name, beta, prior=0.0, bound=math.inf, hindsight=True))
    return out


def evaluate(halves: dict[str, list[Request]], threshold: float) -> dict[str, object]:
    """Choose on tune/ (leave-one-author-out), score held/ and held2/ once."""
    t0 = logit(threshold)
    tune = halves["tune"]
    grid = []
    for m in methods():
        h, s, _ = score_half(tune, m, t0)
        grid.append((m, h, s))
    fixed = grid[0]
    online = [g for g in grid[1:] if not g[0].hindsight]
    best = max(online, key=lambda g: (min(g[1], g[2]), g[1] + g[2]))
    per_name: dict[tuple[str, bool], tuple[Method, float, float]] = {}
    for m, h, s in grid[1:]:
        top = per_name.get((m.name, m.hindsight))
        if top is None or (min(h, s), h + s) > (min(top[1], top[2]), top[1] + top[2]):
            per_name[(m.name, m.hindsight)] = (m, h, s)
    helps = min(best[1], best[2]) - min(fixed[1], fixed[2]) >= NOISE
    scored: dict[str, dict[str, object]] = {}
    for half in ("tune", "held", "held2"):
        pool = None if half == "tune" else tune
        scored[half] = {
            m.label(): score_half(halves[half], m, t0, pool) for m in (fixed[0], best[0])
        }
    return {
        "threshold": threshold,
        "fixed": fixed,
        "best_per_method": per_name,
        "best": best,
        "helps": helps,
        "scored": scored,
        "ceiling": ceiling(tune),
    }


def report(result: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    fixed = result["fixed"]
    assert isinstance(fixed, tuple)
    t = Table("method (tune/, leave-one-author-out, online)", "hit", "silent", "min")
    rows: list[tuple[Method, float, float]] = [fixed, *result["best_per_method"].values()]  # type: ignore[attr-defined]
    for m, h, s in rows:
        t.add_row(m.label(), f"{h:.3f}", f"{s:.3f}", f"{min(h, s):.3f}")
    ch, cs, picks = result["ceiling"]  # type: ignore[misc]
    t.add_row("ceiling: per-author thresholds chosen with labels", f"{ch:.3f}", f"{cs:.3f}",
              f"{min(ch, cs):.3f}")  # fmt: skip
    console.print(t)
    console.print(f"ceiling's thresholds (logit; fixed {logit(result['threshold']):+.2f}): {picks}")  # type: ignore[arg-type]
    best = result["best"]
    assert isinstance(best, tuple)
    console.print(
        f"best on tune/: {best[0].label()}; "
        + ("helps" if result["helps"] else f"does not help (gain < {NOISE}): not shipped")
    )
    t = Table("half", "method", "hit", "silent", "per author (hit/silent)")
    for half, by_method in result["scored"].items():  # type: ignore[attr-defined]
        for label, (h, s, per) in by_method.items():
            authors = " ".join(f"{a} {ph:.2f}/{ps:.2f}" for a, (ph, ps) in per.items())
            t.add_row(half + (" CV" if half == "tune" else ""), label, f"{h:.3f}", f"{s:.3f}",
                      authors)  # fmt: skip
    console.print(t)
