"""NumPy reference implementations of the classic learners, shared by ``banditjax bench`` and
the tests.

Each one is written from its paper, not from ``bandits/``: a Python loop over rounds, NumPy arrays
over runs (and arms), NumPy's own random generator. The only thing shared with the JAX code is the
algorithm (and the problem it runs on), so agreement of the two regrets on the same problem is
evidence that both implement the paper. They are also the baseline of the benchmark: the way one
writes a fast bandit simulator without JAX.

Common conventions (those of the package, ``bandits/core.py``):
- every function simulates ``R`` independent runs at once and returns the final cumulative
  pseudo-regret of each run, ``sum_t (mu* - mu_{A_t})`` ([R], float64);
- the K-armed references take ``means`` [R, K] (one Bernoulli instance per run; ``instances``
  repeats one instance) and a ``seed`` (an int or a ``numpy.random.Generator``);
- an arm never played has index +inf (so every arm is tried once before any index is compared),
  and ties are broken uniformly at random (``random_argmax``);
- rounds are counted from 1 in index formulas (``t`` = the rounds played including this one).

The references:
- ``ucb1``: Auer, Cesa-Bianchi and Fischer (2002), "Finite-time analysis of the multiarmed bandit
  problem", fig. 1: the arm maximising mean_a + sqrt(c ln t / n_a), c = 2 in the paper.
- ``klucb``: Garivier and Cappe (2011), "The KL-UCB algorithm for bounded stochastic bandits and
  beyond", eq. (3) for Bernoulli rewards: the largest q with n_a kl(mean_a, q) <= ln t +
  c ln ln t (c = 0, their recommended practical choice), found by bisection.
- ``thompson``: Agrawal and Goyal (2012), "Analysis of Thompson sampling for the multi-armed
  bandit problem", Algorithm 1: theta_a ~ Beta(S_a + alpha, F_a + beta), play the largest (ties
  have probability 0).
- ``etc``: explore-then-commit, Lattimore and Szepesvari (2020), "Bandit Algorithms", Algorithm 1
  (ch. 6): arm (t mod K) + 1 for t <= m K, then the empirical best for ever.
- ``epsilon_greedy``: Sutton and Barto (2018), "Reinforcement Learning: An Introduction", 2nd ed.,
  sec. 2.2 (the epsilon-greedy action selection of sec. 2.4's simple bandit algorithm), fixed
  epsilon: with probability epsilon a uniformly random arm, otherwise the arm with the largest
  sample-average estimate (untried arms first).
- ``exp3``: Auer, Cesa-Bianchi, Freund and Schapire (2002), "The nonstochastic multiarmed bandit
  problem", fig. 1 (Exp3): p_a = (1 - gamma) w_a / sum_b w_b + gamma / K, play A ~ p, estimate
  x_hat_A = x_A / p_A (0 for the other arms), w_a <- w_a exp(gamma x_hat_a / K); gamma of their
  Corollary 3.2, min(1, sqrt(K ln K / ((e - 1) T))), when none is given (``exp3_gamma``). The
  weights are kept as logarithms (the same distribution, no overflow).
- ``linucb``: Li, Chu, Langford and Schapire (2010), "A contextual-bandit approach to personalized
  news article recommendation", Algorithm 1 (LinUCB with disjoint linear models), with A_a^-1
  kept by Sherman-Morrison updates, on their disjoint linear payoff model (eq. 2): one context per
  round shared by all arms, one parameter per arm.
- ``uniform_expected_regret``: the expected pseudo-regret of a uniformly random arm,
  T (mu* - mean_a mu_a).
- ``discounted_ucb`` and ``sliding_window_ucb``: Garivier and Moulines (2011), "On
  upper-confidence bound policies for switching bandit problems", secs. 3 and 4, on a
  piecewise-stationary Bernoulli problem (``piecewise_means``: segment means and change points,
  the same for every run). D-UCB discounts its counts and sums every round
  (N <- gamma N + 1{arm}), n_t by n <- gamma n + 1, index mean + 2 B sqrt(xi ln n_t / N); SW-UCB
  recounts the whole history of the last tau rounds every round, index
  mean + B sqrt(xi ln min(t, tau) / N). Both return the final dynamic pseudo-regret
  sum_t (max_a mu_a(t) - mu_{A_t}(t)).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["instances", "uniform_instances", "random_argmax", "ucb1", "klucb", "thompson",
           "epsilon_greedy", "exp3", "exp3_gamma", "linucb", "uniform_expected_regret",
           "bernoulli_kl", "piecewise_means", "discounted_ucb", "sliding_window_ucb"]


# ---------------------------------------------------------------------------------------------
# Problems and shared pieces.
# ---------------------------------------------------------------------------------------------
def instances(means, runs: int) -> np.ndarray:
    """One fixed instance (means [K]) for each of ``runs`` runs: [runs, K]."""
    means = np.asarray(means, np.float64)
    return np.broadcast_to(means, (runs, means.shape[-1]))


def uniform_instances(rng: np.random.Generator, runs: int, arms: int) -> np.ndarray:
    """Bernoulli means ~ U(0, 1), one instance per run ([runs, arms]).

    The problem of the bench's K-armed configs (``bernoulli`` with ``generator = "uniform"``).
    """
    return rng.random((runs, arms))


def random_argmax(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Per row of ``values`` ([R, K]), the index of a maximum, uniform among ties.

    One uniform u per row picks the j-th tied index, j = floor(u * number of ties): exactly uniform
    among ties, and K times fewer random numbers than drawing one per arm.
    """
    is_max = values >= values.max(axis=1, keepdims=True)
    ties = np.cumsum(is_max, axis=1)
    count = ties[:, -1]
    choice = np.minimum((rng.random(len(values)) * count).astype(np.int64), count - 1)
    return np.argmax(is_max & (ties == (choice + 1)[:, None]), axis=1)


def _untried_first(index: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.where(counts > 0, index, np.inf)


def _problem(means, seed):
    """(means [R, K] float64, generator, R, K, row indices, best mean per run): what every
    K-armed reference starts from."""
    means = np.asarray(means, np.float64)
    runs, arms = means.shape
    return means, np.random.default_rng(seed), runs, arms, np.arange(runs), means.max(axis=1)


def _index_policy(means, horizon: int, seed, index) -> np.ndarray:
    """A K-armed Bernoulli simulation that plays argmax index(counts, sums, t) every round.

    ``index(counts, sums, t)`` -> [R, K], t = the 1-based round; untried arms come first.
    """
    means, rng, runs, arms, rows, best = _problem(means, seed)
    counts = np.zeros((runs, arms))
    sums = np.zeros((runs, arms))
    regret = np.zeros(runs)
    for t in range(1, horizon + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            values = _untried_first(index(counts, sums, t), counts)
        arm = random_argmax(rng, values)
        mean = means[rows, arm]
        counts[rows, arm] += 1.0
        sums[rows, arm] += rng.random(runs) < mean          # Bernoulli(mean) reward
        regret += best - mean
    return regret


# ---------------------------------------------------------------------------------------------
# K-armed learners.
# ---------------------------------------------------------------------------------------------
def ucb1(means, horizon: int, seed, c: float = 2.0) -> np.ndarray:
    """UCB1 (Auer et al. 2002, fig. 1): mean_a + sqrt(c ln t / n_a). Final regret per run."""
    return _index_policy(means, horizon, seed,
                         lambda n, s, t: s / n + np.sqrt(c * math.log(t) / n))


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """kl(p, q) between Bernoulli laws, arguments clipped into [1e-7, 1 - 1e-7]."""
    eps = 1e-7
    p = np.clip(p, eps, 1 - eps)
    q = np.clip(q, eps, 1 - eps)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def klucb(means, horizon: int, seed, c: float = 0.0, iterations: int = 20) -> np.ndarray:
    """KL-UCB for Bernoulli rewards (Garivier and Cappe 2011, eq. 3). Final regret per run.

    The upper confidence bound max{q in [mean, 1]: n kl(mean, q) <= ln t + c ln ln t} by
    ``iterations`` bisection steps (20 resolve q to 1e-6); ln ln t is floored at 0.
    """
    def index(counts, sums, t):
        n = np.maximum(counts, 1.0)
        mean = sums / n
        log_t = math.log(t)
        level = (log_t + c * math.log(max(log_t, 1.0))) / n
        low, high = mean.copy(), np.ones_like(mean)
        for _ in range(iterations):
            mid = 0.5 * (low + high)
            inside = bernoulli_kl(mean, mid) <= level
            low = np.where(inside, mid, low)
            high = np.where(inside, high, mid)
        return low

    return _index_policy(means, horizon, seed, index)


def thompson(means, horizon: int, seed, prior_alpha: float = 1.0,
             prior_beta: float = 1.0) -> np.ndarray:
    """Beta-Bernoulli Thompson sampling (Agrawal and Goyal 2012, Alg. 1). Final regret per run."""
    means, rng, runs, arms, rows, best = _problem(means, seed)
    successes = np.zeros((runs, arms))
    failures = np.zeros((runs, arms))
    regret = np.zeros(runs)
    for _ in range(horizon):
        arm = np.argmax(rng.beta(prior_alpha + successes, prior_beta + failures), axis=1)
        mean = means[rows, arm]
        reward = rng.random(runs) < mean
        successes[rows, arm] += reward
        failures[rows, arm] += ~reward
        regret += best - mean
    return regret


def etc(means, horizon: int, seed, m: int) -> np.ndarray:
    """Explore-then-commit, Lattimore and Szepesvari (2020), Algorithm 1 (ch. 6). Final regret.

    Rounds t = 1, ..., n (1-based, as in the book): arm (t mod K) + 1 (1-based arms) while
    t <= m K; at t = m K + 1 the arm with the largest empirical mean (ties uniformly at random)
    is chosen and played until n. If m K >= n the run never leaves exploration.
    """
    means, rng, runs, arms, rows, best = _problem(means, seed)
    counts = np.zeros((runs, arms))
    sums = np.zeros((runs, arms))
    regret = np.zeros(runs)
    committed = None
    for t in range(1, horizon + 1):
        if t <= m * arms:
            arm = np.full(runs, t % arms)               # (t mod K) + 1, as a 0-based index
            mean = means[rows, arm]
            counts[rows, arm] += 1.0
            sums[rows, arm] += rng.random(runs) < mean
        else:
            if committed is None:
                committed = random_argmax(rng, sums / counts)
            mean = means[rows, committed]
        regret += best - mean
    return regret


def epsilon_greedy(means, horizon: int, seed, epsilon: float = 0.1) -> np.ndarray:
    """Epsilon-greedy with a fixed epsilon (Sutton and Barto 2018, sec. 2.2). Final regret per run.

    Each round: with probability epsilon a uniformly random arm; otherwise the arm with the largest
    sample average (arms never played first, ties at random).
    """
    means, rng, runs, arms, rows, best = _problem(means, seed)
    counts = np.zeros((runs, arms))
    sums = np.zeros((runs, arms))
    regret = np.zeros(runs)
    for _ in range(horizon):
        average = _untried_first(sums / np.maximum(counts, 1.0), counts)
        greedy = random_argmax(rng, average)
        explore = rng.random(runs) < epsilon
        arm = np.where(explore, rng.integers(0, arms, runs), greedy)
        mean = means[rows, arm]
        counts[rows, arm] += 1.0
        sums[rows, arm] += rng.random(runs) < mean
        regret += best - mean
    return regret


def exp3_gamma(arms: int, horizon: int) -> float:
    """Exp3's exploration rate from Auer et al. (2002), Corollary 3.2 (g = T):
    min(1, sqrt(K ln K / ((e - 1) T)))."""
    return min(1.0, math.sqrt(arms * math.log(arms) / ((math.e - 1) * horizon)))


def exp3(means, horizon: int, seed, gamma: float | None = None) -> np.ndarray:
    """Exp3 (Auer, Cesa-Bianchi, Freund and Schapire 2002, fig. 1). Final regret per run.

    Bernoulli rewards in {0, 1}; ``gamma`` defaults to ``exp3_gamma(K, horizon)``.
    """
    means, rng, runs, arms, rows, best = _problem(means, seed)
    if gamma is None:
        gamma = exp3_gamma(arms, horizon)
    log_weights = np.zeros((runs, arms))
    regret = np.zeros(runs)
    for _ in range(horizon):
        weights = np.exp(log_weights - log_weights.max(axis=1, keepdims=True))
        p = (1.0 - gamma) * weights / weights.sum(axis=1, keepdims=True) + gamma / arms
        cdf = np.cumsum(p, axis=1)
        u = rng.random(runs) * cdf[:, -1]
        arm = np.minimum((cdf <= u[:, None]).sum(axis=1), arms - 1)     # A ~ p
        mean = means[rows, arm]
        reward = rng.random(runs) < mean
        log_weights[rows, arm] += gamma * reward / (p[rows, arm] * arms)
        regret += best - mean
    return regret


# ---------------------------------------------------------------------------------------------
# Piecewise-stationary K-armed learners.
# ---------------------------------------------------------------------------------------------
def piecewise_means(segment_means, change_points, horizon: int) -> np.ndarray:
    """[T, K] the arm means of every round: row s of ``segment_means`` ([S, K]) from round
    change_points[s - 1] (0-based) on."""
    segment = np.searchsorted(np.asarray(change_points, np.int64), np.arange(horizon),
                              side="right")
    return np.asarray(segment_means, np.float64)[segment]


def _switching_policy(round_means: np.ndarray, runs: int, seed, index, learn) -> np.ndarray:
    """R runs of a Bernoulli bandit whose means in round t are round_means[t - 1]; plays
    argmax index(t) ([R, K], untried arms first by the policy) and calls learn(t, arm, reward).
    Returns the final dynamic pseudo-regret per run."""
    rng = np.random.default_rng(seed)
    regret = np.zeros(runs)
    for t in range(1, round_means.shape[0] + 1):
        mu = round_means[t - 1]
        arm = random_argmax(rng, index(t))
        mean = mu[arm]
        learn(t, arm, (rng.random(runs) < mean).astype(np.float64))
        regret += mu.max() - mean
    return regret


def discounted_ucb(round_means: np.ndarray, runs: int, seed, gamma: float, xi: float = 0.6,
                   bound: float = 1.0) -> np.ndarray:
    """D-UCB (Garivier and Moulines 2011, sec. 3) on ``round_means`` ([T, K]). Final dynamic
    regret per run."""
    arms = round_means.shape[1]
    counts, sums = np.zeros((runs, arms)), np.zeros((runs, arms))
    rows = np.arange(runs)
    discounted_rounds = [0.0]

    def index(t):
        discounted_rounds[0] = gamma * discounted_rounds[0] + 1.0   # sum_{s<=t} gamma^(t-s)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = sums / counts + 2 * bound * np.sqrt(
                xi * math.log(discounted_rounds[0]) / counts)
        return _untried_first(value, counts)

    def learn(t, arm, reward):
        counts[:] *= gamma
        sums[:] *= gamma
        counts[rows, arm] += 1.0
        sums[rows, arm] += reward

    return _switching_policy(round_means, runs, seed, index, learn)


def sliding_window_ucb(round_means: np.ndarray, runs: int, seed, window: int, xi: float = 0.6,
                       bound: float = 1.0) -> np.ndarray:
    """SW-UCB (Garivier and Moulines 2011, sec. 4) on ``round_means`` ([T, K]): the statistics of
    the last ``window`` rounds recounted from the full history each round. Final dynamic regret
    per run."""
    horizon, arms = round_means.shape
    played = np.zeros((runs, horizon), np.int64)
    rewards = np.zeros((runs, horizon))
    hot = np.eye(arms)

    def index(t):
        recent = slice(max(0, t - 1 - window), t - 1)             # rounds t - tau .. t - 1
        counts = hot[played[:, recent]].sum(axis=1)                  # [R, K]
        sums = (hot[played[:, recent]] * rewards[:, recent, None]).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = sums / counts + bound * np.sqrt(xi * math.log(min(t, window)) / counts)
        return _untried_first(value, counts)

    def learn(t, arm, reward):
        played[:, t - 1] = arm
        rewards[:, t - 1] = reward

    return _switching_policy(round_means, runs, seed, index, learn)


def uniform_expected_regret(means, horizon: int) -> float:
    """E[regret] of the uniform-random policy on one instance: T (max mean - average mean)."""
    means = np.asarray(means, np.float64)
    return float(horizon * (means.max() - means.mean()))


# ---------------------------------------------------------------------------------------------
# Linear contextual.
# ---------------------------------------------------------------------------------------------
def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def linucb(runs: int, horizon: int, seed, arms: int = 10, dim: int = 16, alpha: float = 1.0,
           regulariser: float = 1.0, noise: float = 0.1) -> np.ndarray:
    """LinUCB with disjoint models (Li et al. 2010, Alg. 1). Final regret per run.

    The problem (the disjoint ``linear`` environment of the package, Li et al.'s eq. 2): per run,
    theta_a uniform on the unit sphere for each arm; per round, one context x uniform on the unit
    sphere shared by all arms; reward <theta_a, x> + noise N(0, 1). A_a = regulariser I +
    sum x x^T over the rounds arm a was played, kept as A_a^-1 (Sherman-Morrison), b_a = sum r x;
    index theta_hat_a^T x + alpha sqrt(x^T A_a^-1 x), theta_hat_a = A_a^-1 b_a.
    """
    rng = np.random.default_rng(seed)
    theta = _unit_rows(rng.standard_normal((runs, arms, dim)))
    inverse = np.broadcast_to(np.eye(dim) / regulariser, (runs, arms, dim, dim)).copy()
    b = np.zeros((runs, arms, dim))
    counts = np.zeros((runs, arms))
    regret = np.zeros(runs)
    rows = np.arange(runs)
    for _ in range(horizon):
        x = _unit_rows(rng.standard_normal((runs, dim)))
        estimate = np.einsum("rkij,rkj->rki", inverse, b)
        projected = np.einsum("rkij,rj->rki", inverse, x)                # A_a^-1 x
        width = np.sqrt(np.maximum(np.einsum("rki,ri->rk", projected, x), 0.0))
        index = np.einsum("rki,ri->rk", estimate, x) + alpha * width
        arm = random_argmax(rng, _untried_first(index, counts))
        expected = np.einsum("rki,ri->rk", theta, x)
        chosen = expected[rows, arm]
        reward = chosen + noise * rng.standard_normal(runs)
        u = projected[rows, arm]
        inverse[rows, arm] -= u[:, :, None] * u[:, None, :] / (1.0 + (u * x).sum(1))[:, None, None]
        b[rows, arm] += reward[:, None] * x
        counts[rows, arm] += 1.0
        regret += expected.max(axis=1) - chosen
    return regret
