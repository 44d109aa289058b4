"""LLM routing over a synthetic cost/quality surface: which (model, test-time budget) per request.

Each round a request x arrives: a unit-norm embedding z, a latent difficulty b_x, a
discrimination a_x and an input length. The arms are (model m, test-time budget k) pairs,
arm index = m * len(budgets) + j for budget j (the "one action space for model routing and
test-time scaling" of the UniScale formulation, README, "LLM routing"). Choosing an arm yields a
quality outcome and a dollar cost; the learner's objective is quality - lambda * normalised cost.

Surface (every constant is a Setting; defaults and their sources below):

1. Single-shot success, a two-parameter item-response model (Birnbaum 1968, in Lord and Novick,
   "Statistical Theories of Mental Test Scores", chs. 17-20; Lord 1980), with a multidimensional
   ability as in IRT-Router (Song et al. 2025, "IRT-Router: Effective and Interpretable Multi-LLM
   Routing via Item Response Theory", ACL) and the IRT fits of LLM benchmarks in tinyBenchmarks
   (Polo et al. 2024, ICML):

       p_m(x) = sigmoid(a_x (theta_m + u_m . z - b_x + g(B))),

   theta_m the model's ability, u_m its specialisation (so no model dominates everywhere), g(B)
   the reasoning-budget gain (0 unless ``scaling = 'reasoning'``).
2. Test-time budget k (``scaling``):
   - ``verifier``: k samples and a perfect verifier (best-of-k, coverage): q = 1 - (1 - p)^k
     (Brown et al. 2024, "Large Language Monkeys: Scaling Inference Compute with Repeated
     Sampling": coverage with independent samples).
   - ``majority``: k samples and a plurality vote. Each sample is right with probability p, the
     request's dominant wrong answer with probability rho (1 - p) (rho = ``wrong_concentration``)
     and a wrong answer of its own otherwise; q = P(the right answer wins the vote), ties broken
     uniformly. q -> 1 as k grows when p > rho (1 - p) and q -> 0 otherwise: voting saturates on
     easy requests and hurts on hard ones, the non-monotone scaling that Chen et al. 2024 ("Are
     More LLM Calls All You Need? Towards Scaling Laws of Compound Inference Systems") explain
     by easy and hard queries. ``majority_vote_quality`` is the exact trinomial sum.
   - ``reasoning``: one sample with a thinking budget of B tokens; the ability gains
     g(B) = gain * s * (1 - exp(-n / s)) logits, n = log2(1 + B / unit) doublings of the budget,
     s = ``reasoning_saturation``: about ``reasoning_gain`` logits per doubling at first, at most
     gain * s. Shape: accuracy linear in log thinking compute that flattens after a few
     doublings (OpenAI 2024, "Learning to Reason with LLMs", the AIME test-time compute figure;
     Muennighoff et al. 2025, "s1: Simple test-time scaling", budget forcing; Snell et al. 2024,
     "Scaling LLM Test-Time Compute Optimally can be More Effective than Scaling Model
     Parameters"). The constants are our choice within that shape, not fitted.
3. Cost in dollars (the pricing of public APIs, as in RouterBench, Hu et al. 2024):
       cost = (input_tokens * price_in_m + k * output_tokens * price_out_m) / 1e6
   for the sampling scalings (the prompt is billed once, as with the n parameter of OpenAI's
   chat API), and (input_tokens * price_in_m + (output_tokens + B) * price_out_m) / 1e6 with a
   thinking budget (thinking tokens are billed as output tokens). Input length is log-normal
   (median ``input_tokens``); the answer length grows with difficulty,
   output_tokens = ``output_tokens`` * exp(``length_per_difficulty`` * (b_x - mean difficulty)).
   Normalised cost = cost / (the cost of one call of the dearest model, by output price, at the
   smallest budget, on a typical request: median input length, mean difficulty); lambda =
   ``cost_weight`` is thus "quality points per call of the dearest model".
4. Outcome (``outcome``): ``bernoulli``: y ~ Bernoulli(q) (correct or not; common random
   numbers: y = [u < q] with one uniform u per round), ``graded``: y ~ Beta(kappa q,
   kappa (1 - q)), a judge's score in [0, 1] with mean q. Feedback.reward is the scalarised
   objective y - lambda * normalised cost; Feedback.extras holds 'quality' (y) and 'cost' (the
   normalised cost) so cost-aware learners can model them apart.

Requests: z = normalise(c_j + ``topic_spread`` * N(0, I_d / d)) around one of ``topics``
random unit topic centres c_j (prompt embeddings cluster by task; RouterBench has 8 task
families, hence 8 topics); specialisation u_m ~ N(0, ``specialisation``^2 I_d) so u_m . z has
standard deviation ``specialisation`` logits; difficulty b_x = ``difficulty_mean`` + v . z +
``difficulty_spread`` * N(0, 1) with v ~ N(0, ``difficulty_signal``^2 I_d) (part of the
difficulty shows in the embedding, part does not); log a_x ~ N(log ``discrimination``,
``discrimination_spread``^2). u, v and the topic centres are drawn per instance.

The calibrated preset (the defaults, and ``experiments/configs/routing.toml``): six models with
the public list prices (dollars per 1M input / output tokens, 2024) of models used in the
RouterBench and RouteLLM studies (Hu et al. 2024; Ong et al. 2024, "RouteLLM: Learning to Route
LLMs with Preference Data"): Mistral-7B 0.2 / 0.2, Llama-2-70B 0.9 / 0.9, Mixtral-8x7B
0.6 / 0.6 (Together AI), GPT-3.5-turbo 0.5 / 1.5, Claude 2 8 / 24, GPT-4 30 / 60 (OpenAI and
Anthropic price lists): 150x (input) to 300x (output) between the cheapest and the dearest.
The abilities are NOT those models' measured abilities: they are calibrated (by bisection on
this surface, ``calibrate_abilities``) so that the mean single-shot quality runs from about 0.2
(weakest) to about 0.78 (strongest), targets taken from the RouterBench / RouteLLM data above, with
the intermediate models (0.40, 0.45, 0.50, 0.62) spaced between them by our choice, roughly in
the order of public 2024 leaderboards. The names label the price points only. With these
defaults the per-request oracle sends most traffic to the four cheap models once lambda >= 0.01
(measured on the preset config, 4 instances: 54% at 0.01, 66% at 0.1, 77% at 0.3; 14% at 0).

Default constants of the request distribution and their sources (all are Settings):
- ``topics`` 8: RouterBench's 8 task families. ``dim`` 8: small enough for LinUCB per arm.
- ``discrimination`` 1.5 (median a_x), ``discrimination_spread`` 0.3, ``difficulty_spread`` 1.5
  and ``difficulty_signal`` 1.0 logits: our choice, in the range of IRT fits to LLM benchmark
  items (Polo et al. 2024 fit 2PL models with discriminations and difficulties spread over a few
  logits); they make many requests easy for every model (so cheap models suffice) and some hard
  for all, as RouterBench's oracle results imply.
- ``specialisation`` 0.8 logits: our choice; large enough that the best model differs between
  topics for mid-tier models, small enough that the strongest model stays best on average.
- ``input_tokens`` 400 (median, log-sd 0.7) and ``output_tokens`` 250 at mean difficulty, +30%
  per logit of difficulty (``length_per_difficulty`` 0.3): our choice, typical lengths of chat
  and benchmark prompts and answers (hundreds of tokens); only cost ratios matter for routing.
- ``wrong_concentration`` 0.5: our choice; with it a vote helps when p > 1/3 and hurts below.
- ``reasoning_gain`` 0.5 logits per doubling, ``reasoning_saturation`` 3 doublings,
  ``reasoning_unit`` 512 tokens: our choice within the published shape (see 2.).
- ``graded_concentration`` 10: our choice (a judge score with sd about 0.15 at q = 0.5).
- ``cost_weight`` 0.1: a call of the dearest model is worth 0.1 quality points.

Shifts (``shift``; from round ``shift_round`` on, model ``shift_model``): ``price_cut`` (its
prices times ``shift_size``), ``quality_regression`` (its ability minus ``shift_size``
logits), ``new_model`` (before the shift its arms fail: quality 0 and cost 0, as for an endpoint
that does not exist yet). Optional per-round budget ``budget`` (normalised cost): a token
bucket that accrues ``budget`` per round; an arm that costs more than the balance is replaced by
the request's cheapest arm (the router's fallback), and Feedback.action reports the arm served.

Observation.features [K, d + 1]: every arm's row is (z, 1), the context plus a bias, the
layout of a disjoint LinUCB (one regression per arm, Li et al. 2010). Observation.expected_rewards
[K]: q - lambda * normalised cost of every arm for this request (read only by the ``oracle``).
StepInfo.regret: the per-request oracle's objective minus that of the arm served. Metrics:
``quality`` (expected quality of the arm served), ``cost`` (its dollars), and
``share.<model>@<budget>`` (or ``share.<model>``), whose running means are the traffic shares.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.scipy.special import xlogy

from envs.core import REGRET, Metric
from envs.core import (Array, ConfigError, EnvSpec, Environment, Observation, Setting, StepInfo,
                       immediate_feedback, register_env, unit_rows)

# The calibrated model table: (name, input $/1M tokens, output $/1M tokens, ability theta_m).
# Prices: public list prices in 2024 (see the module docstring). Abilities: calibrated on this
# surface with the default settings (``calibrate_abilities(..., iterations=24, instances=64,
# requests=2048, seed=0)``) to the mean single-shot qualities in TARGET_QUALITY (averages over
# instances: each instance's random specialisations move a model's mean by several points).
# Checked on four fresh seeds (64 instances x 1024 requests): within 0.026 of every target.
PRESET_MODELS = (
    ("mistral-7b", 0.20, 0.20, -1.964),
    ("llama-2-70b", 0.90, 0.90, -0.583),
    ("mixtral-8x7b", 0.60, 0.60, -0.234),
    ("gpt-3.5-turbo", 0.50, 1.50, -0.024),
    ("claude-2", 8.00, 24.00, 0.740),
    ("gpt-4", 30.00, 60.00, 1.845),
)
TARGET_QUALITY = (0.20, 0.40, 0.45, 0.50, 0.62, 0.78)
SCALINGS = ("verifier", "majority", "reasoning")
OUTCOMES = ("bernoulli", "graded")
SHIFTS = ("none", "price_cut", "quality_regression", "new_model")
SHARES = ("arm", "model", "none")
SHIFT_SIZE_DEFAULT = {"price_cut": 0.25, "quality_regression": 1.0, "new_model": 0.0}
MAX_SAMPLES = 64


# ---------------------------------------------------------------------------------------------
# The surface, as pure functions (tested against hand-computed values).
# ---------------------------------------------------------------------------------------------
def single_shot(ability: Array, specialisation: Array, z: Array, difficulty: Array,
                discrimination: Array, gain: Array = 0.0) -> Array:
    """p_m(x) = sigmoid(a_x (theta_m + u_m . z - b_x + gain)) for every model ([M])."""
    return jax.nn.sigmoid(discrimination * (ability + specialisation @ z - difficulty + gain))


def verifier_quality(p: Array, k: Array) -> Array:
    """Best-of-k with a perfect verifier: 1 - (1 - p)^k."""
    return 1.0 - (1.0 - p) ** k


def _vote_tables(k: int) -> tuple[np.ndarray, ...]:
    """Static tables over (c right, w dominant-wrong) votes of k samples: c, w, s = k - c - w,
    log multinomial coefficient, and the probability the right answer wins given the counts."""
    c = np.arange(k + 1)[:, None] * np.ones((1, k + 1))
    w = np.ones((k + 1, 1)) * np.arange(k + 1)[None, :]
    s = k - c - w
    valid = s >= 0
    s = np.maximum(s, 0)
    lgamma = np.vectorize(math.lgamma)
    log_coef = lgamma(k + 1.0) - lgamma(c + 1.0) - lgamma(w + 1.0) - lgamma(s + 1.0)
    other = np.maximum(w, (s > 0).astype(float))        # largest count of any wrong answer
    tied = 1.0 + (w == c) + np.where(c == 1, s, 0.0)      # answers sharing the top count
    win = np.where(c > other, 1.0, np.where((c == other) & (c > 0), 1.0 / tied, 0.0))
    win = np.where(valid, win, 0.0)
    log_coef = np.where(valid, log_coef, -np.inf)
    return c, w, s, log_coef, win


def majority_vote_quality(p: Array, k: int, concentration: Array) -> Array:
    """P(the right answer wins a plurality vote of k samples), elementwise in p.

    Each sample is right with probability p, the dominant wrong answer with q = rho (1 - p),
    a fresh wrong answer with r = (1 - rho)(1 - p); ties are broken uniformly at random.
    """
    c, w, s, log_coef, win = (jnp.asarray(x, jnp.float32) for x in _vote_tables(int(k)))
    p = jnp.clip(jnp.asarray(p, jnp.float32), 0.0, 1.0)[..., None, None]
    q = concentration * (1.0 - p)
    r = (1.0 - concentration) * (1.0 - p)
    log_prob = log_coef + xlogy(c, p) + xlogy(w, q) + xlogy(s, r)
    return jnp.sum(jnp.exp(log_prob) * win, axis=(-2, -1))


def reasoning_gain(budget: Array, gain: Array, saturation: Array, unit: Array) -> Array:
    """Logit gain of a thinking budget: gain * s * (1 - exp(-log2(1 + B / unit) / s))."""
    doublings = jnp.log2(1.0 + budget / unit)
    return gain * saturation * (1.0 - jnp.exp(-doublings / saturation))


def call_cost(input_tokens: Array, output_tokens: Array, price_in: Array, price_out: Array,
              samples: Array = 1.0, thinking_tokens: Array = 0.0) -> Array:
    """Dollars: (input x price_in + (samples x output + thinking) x price_out) / 1e6."""
    return (input_tokens * price_in
            + (samples * output_tokens + thinking_tokens) * price_out) / 1e6


# ---------------------------------------------------------------------------------------------
# Pytrees.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class RoutingParams:
    """One instance: the models, the request distribution, lambda and the options."""

    cost_weight: Array          # [] lambda
    ability: Array              # [M] theta_m
    specialisation: Array       # [M, d] u_m
    price_in: Array             # [M] dollars per 1M input tokens
    price_out: Array            # [M]
    topics: Array               # [C, d] unit topic centres
    difficulty_direction: Array  # [d] v
    cost_scale: Array           # [] dollars of the reference call
    budget: Array               # [] per-round budget (normalised cost; inf = none)
    shift_round: Array          # [] int
    shift_model: Array          # [] int
    shift_size: Array           # []
    scalars: dict               # the remaining dynamic settings, [] each


@struct.dataclass
class Request:
    """One request x."""

    z: Array                    # [d] unit embedding
    difficulty: Array           # [] b_x
    discrimination: Array       # [] a_x
    input_tokens: Array         # []
    output_tokens: Array        # [] answer length (before samples or thinking)


@struct.dataclass
class RoutingState:
    """The current request and its surface (made in reset, and in step for the next round)."""

    t: Array
    z: Array                    # [d] unit embedding
    difficulty: Array           # [] b_x
    quality: Array              # [K] expected quality of every arm
    cost: Array                 # [K] dollars of every arm
    available: Array            # [K] bool (False before a new model appears)
    balance: Array              # [] budget left (normalised cost)


def _settings() -> tuple[Setting, ...]:
    positive = dict(low=0.0, low_open=True)
    return (
        Setting("cost_weight", 0.1, "lambda: objective = quality - lambda * normalised cost "
                "(1 normalised cost = one call of the dearest model)", low=0.0),
        Setting("models", 6, "number of models M (6: the calibrated preset; otherwise give "
                "abilities, price_in, price_out)", kind=int, static=True, low=1),
        Setting("budgets", [1.0, 4.0, 16.0], "test-time budgets: samples k (verifier, "
                "majority; integers 1-64) or thinking tokens B (reasoning)", kind="vector",
                static=True, low=0.0),
        Setting("scaling", "majority", "test-time scaling: 'verifier' (best-of-k), "
                "'majority' (vote of k), 'reasoning' (thinking budget)", kind=str,
                static=True, choices=SCALINGS),
        Setting("outcome", "bernoulli", "observed quality: 'bernoulli' (0/1) or 'graded' "
                "(Beta(kappa q, kappa (1 - q)))", kind=str, static=True, choices=OUTCOMES),
        Setting("dim", 8, "embedding dimension d", kind=int, static=True, low=1),
        Setting("topics", 8, "number of request topics (clusters of embeddings)", kind=int,
                static=True, low=1),
        Setting("shift", "none", "mid-run change: 'none', 'price_cut', 'quality_regression', "
                "'new_model'", kind=str, static=True, choices=SHIFTS),
        Setting("shares", "arm", "traffic-share metrics: one per 'arm', per 'model', or "
                "'none'", kind=str, static=True, choices=SHARES),
        Setting("abilities", None, "theta_m per model (default: the calibrated preset)",
                kind="vector", optional=True),
        Setting("price_in", None, "dollars per 1M input tokens per model (default: preset)",
                kind="vector", optional=True, **positive),
        Setting("price_out", None, "dollars per 1M output tokens per model (default: preset)",
                kind="vector", optional=True, **positive),
        Setting("specialisation", 0.8, "sd of the specialisation logit u_m . z", low=0.0),
        Setting("difficulty_mean", 0.0, "mean difficulty b (logits)"),
        Setting("difficulty_signal", 1.0, "sd of the part of the difficulty visible in z "
                "(v . z)", low=0.0),
        Setting("difficulty_spread", 1.5, "sd of the latent part of the difficulty", low=0.0),
        Setting("discrimination", 1.5, "median discrimination a_x", **positive),
        Setting("discrimination_spread", 0.3, "sd of log a_x", low=0.0),
        Setting("topic_spread", 0.5, "spread of embeddings around their topic centre",
                low=0.0),
        Setting("wrong_concentration", 0.5, "rho: share of wrong samples that agree on the "
                "dominant wrong answer (majority)", low=0.0, high=1.0),
        Setting("reasoning_gain", 0.5, "logit gain per doubling of the thinking budget",
                low=0.0),
        Setting("reasoning_saturation", 3.0, "doublings after which the thinking gain "
                "saturates", **positive),
        Setting("reasoning_unit", 512.0, "thinking tokens of the first doubling", **positive),
        Setting("input_tokens", 400.0, "median input length (tokens)", **positive),
        Setting("input_spread", 0.7, "sd of log input length", low=0.0),
        Setting("output_tokens", 250.0, "answer length at mean difficulty (tokens)",
                **positive),
        Setting("length_per_difficulty", 0.3, "log answer length per logit of difficulty"),
        Setting("graded_concentration", 10.0, "kappa of the graded outcome", **positive),
        Setting("budget", None, "per-round budget (normalised cost) of the token bucket; "
                "none: no budget", optional=True, low=0.0),
        Setting("shift_round", None, "round of the shift (default: horizon / 2)", kind=int,
                optional=True, low=0),
        Setting("shift_model", None, "model index the shift affects (default: the last)",
                kind=int, optional=True, low=0),
        Setting("shift_size", None, "price_cut: price factor (default 0.25); "
                "quality_regression: ability drop in logits (default 1)", optional=True,
                low=0.0),
    )


# Dynamic settings passed to the surface as plain scalars (RoutingParams.scalars).
_SCALARS = ("specialisation", "difficulty_mean", "difficulty_signal", "difficulty_spread",
            "discrimination", "discrimination_spread", "topic_spread", "wrong_concentration",
            "reasoning_gain", "reasoning_saturation", "reasoning_unit", "input_tokens",
            "input_spread", "output_tokens", "length_per_difficulty", "graded_concentration")


@register_env("routing")
class Routing(Environment):
    """LLM routing over (model, test-time budget) arms, an IRT quality model (Song et al. 2025).

    The objective is quality - lambda * normalised cost."""

    settings = _settings()
    metrics = (REGRET, Metric("quality", "mean quality up to t"),
               Metric("cost", "mean normalised cost up to t"))
    figures = ("analysis.routing:plot_routing",)   # Pareto front, AIQ and traffic shares

    def __init__(self, **static: Any):
        super().__init__(**static)
        self.budgets = [float(b) for b in self.budgets]
        self.model_names = (tuple(m[0] for m in PRESET_MODELS) if self.models == len(
            PRESET_MODELS) else tuple(f"m{i}" for i in range(self.models)))
        self.metric_names = ("quality", "cost") + self.share_names()

    # -- config ---------------------------------------------------------------------------------
    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        values = dict(values)
        if values["models"] == len(PRESET_MODELS):
            for name, column in (("price_in", 1), ("price_out", 2), ("abilities", 3)):
                if values.get(name) is None:
                    values[name] = [float(m[column]) for m in PRESET_MODELS]
        if values["shift"] != "none":
            if values.get("shift_round") is None:
                values["shift_round"] = int(context.get("horizon", 2)) // 2
            if values.get("shift_model") is None:
                values["shift_model"] = values["models"] - 1
            if values.get("shift_size") is None:
                values["shift_size"] = SHIFT_SIZE_DEFAULT[values["shift"]]
        return values

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        m = values["models"]
        for name in ("abilities", "price_in", "price_out"):
            given = values.get(name)
            if given is None:
                raise ConfigError(f"{where}.{name}: required when models = {m} (the preset "
                                  f"has {len(PRESET_MODELS)} models): give {m} numbers")
            if len(given) != m:
                raise ConfigError(f"{where}.{name} has {len(given)} values but models = {m}: "
                                  f"give one per model")
        budgets = values["budgets"]
        if len(budgets) == 0:
            raise ConfigError(f"{where}.budgets = []: give at least one budget")
        if len(set(budgets)) != len(budgets):
            raise ConfigError(f"{where}.budgets = {budgets}: budgets must be distinct")
        if values["scaling"] in ("verifier", "majority"):
            for b in budgets:
                if b != int(b) or not 1 <= b <= MAX_SAMPLES:
                    raise ConfigError(f"{where}.budgets = {budgets}: with scaling = "
                                      f"{values['scaling']!r} a budget is a number of samples, "
                                      f"an integer from 1 to {MAX_SAMPLES}")
        if values["shift"] != "none" and values["shift_model"] >= m:
            raise ConfigError(f"{where}.shift_model = {values['shift_model']}: out of range, "
                              f"expected 0 to {m - 1}")
        if values["shift"] == "price_cut" and values["shift_size"] <= 0:
            raise ConfigError(f"{where}.shift_size = {values['shift_size']}: a price factor "
                              f"must be > 0")

    # -- static facts ---------------------------------------------------------------------------
    @property
    def num_arms(self) -> int:
        return self.models * len(self.budgets)

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.num_arms, feature_dim=self.dim + 1, reward_range=None,
                       bernoulli_rewards=False, expected_rewards=True)

    def budget_label(self, budget: float) -> str:
        prefix = "b" if self.scaling == "reasoning" else "k"
        return f"{prefix}{int(budget) if float(budget).is_integer() else budget}"

    def arm_names(self) -> tuple[str, ...]:
        """'<model>@<budget>' per arm, in arm order (arm = model * len(budgets) + j)."""
        return tuple(f"{m}@{self.budget_label(b)}" for m in self.model_names
                     for b in self.budgets)

    def share_names(self) -> tuple[str, ...]:
        if self.shares == "arm":
            return tuple(f"share.{a}" for a in self.arm_names())
        if self.shares == "model":
            return tuple(f"share.{m}" for m in self.model_names)
        return ()

    # -- instances ------------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> RoutingParams:
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        scalars = {name: f32(settings[name]) for name in _SCALARS}
        d, m, c = self.dim, self.models, self.topics
        # One normal draw for the whole instance (one threefry call: cheaper to compile).
        normal = jax.random.normal(key, ((m + c + 1) * d,))
        specialisation = scalars["specialisation"] * normal[:m * d].reshape(m, d)
        topics = unit_rows(normal[m * d:(m + c) * d].reshape(c, d))
        direction = scalars["difficulty_signal"] * normal[(m + c) * d:]
        price_in, price_out = f32(settings["price_in"]), f32(settings["price_out"])
        params = RoutingParams(
            cost_weight=f32(settings["cost_weight"]), ability=f32(settings["abilities"]),
            specialisation=specialisation.astype(jnp.float32), price_in=price_in,
            price_out=price_out, topics=topics.astype(jnp.float32),
            difficulty_direction=direction.astype(jnp.float32), cost_scale=f32(1.0),
            budget=f32(settings["budget"]) if "budget" in settings else f32(jnp.inf),
            shift_round=jnp.asarray(settings.get("shift_round", 0), jnp.int32),
            shift_model=jnp.asarray(settings.get("shift_model", 0), jnp.int32),
            shift_size=f32(settings.get("shift_size", 0.0)), scalars=scalars)
        return params.replace(cost_scale=self.reference_cost(params))

    def reference_cost(self, params: RoutingParams) -> Array:
        """Dollars of one smallest-budget call of the dearest model on a typical request."""
        s = params.scalars
        dearest = jnp.argmax(params.price_out)
        samples, thinking = self._budget_tokens(self.budgets[0])
        return call_cost(s["input_tokens"], s["output_tokens"], params.price_in[dearest],
                         params.price_out[dearest], samples, thinking)

    def _budget_tokens(self, budget: float) -> tuple[float, float]:
        """(samples, thinking tokens) of one budget."""
        if self.scaling == "reasoning":
            return 1.0, budget
        return budget, 0.0

    # -- requests and their surface -------------------------------------------------------------
    def draw_request(self, key: Array, params: RoutingParams) -> Request:
        """A new request: embedding, difficulty, discrimination and token counts."""
        s = params.scalars
        d = self.dim
        # One normal draw per request (one threefry call); the topic index comes from the
        # first coordinate through the normal CDF, which makes it uniform.
        normal = jax.random.normal(key, (d + 4,))
        index = jnp.floor(jax.scipy.stats.norm.cdf(normal[0]) * self.topics).astype(jnp.int32)
        topic = params.topics[jnp.clip(index, 0, self.topics - 1)]
        z = unit_rows(topic + s["topic_spread"] * normal[1:d + 1] / jnp.sqrt(float(d)))
        difficulty = (s["difficulty_mean"] + params.difficulty_direction @ z
                      + s["difficulty_spread"] * normal[d + 1])
        discrimination = s["discrimination"] * jnp.exp(s["discrimination_spread"] * normal[d + 2])
        input_tokens = s["input_tokens"] * jnp.exp(s["input_spread"] * normal[d + 3])
        output_tokens = s["output_tokens"] * jnp.exp(
            s["length_per_difficulty"] * (difficulty - s["difficulty_mean"]))
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return Request(z=f32(z), difficulty=f32(difficulty), discrimination=f32(discrimination),
                       input_tokens=f32(input_tokens), output_tokens=f32(output_tokens))

    def surface(self, request: Request, t: Array, params: RoutingParams
                ) -> tuple[Array, Array, Array]:
        """(quality [K], dollars [K], available [K]) of every arm on a request at round t."""
        s = params.scalars
        ability, price_in, price_out, available = self.models_at(t, params)
        quality, cost = [], []
        p = single_shot(ability, params.specialisation, request.z, request.difficulty,
                        request.discrimination)
        for budget in self.budgets:                       # static loop over the budget ladder
            samples, thinking = self._budget_tokens(budget)
            if self.scaling == "reasoning":
                gain = reasoning_gain(budget, s["reasoning_gain"], s["reasoning_saturation"],
                                      s["reasoning_unit"])
                p = single_shot(ability, params.specialisation, request.z, request.difficulty,
                                request.discrimination, gain)
            if self.scaling == "verifier":
                q = verifier_quality(p, samples)
            elif self.scaling == "majority":
                q = majority_vote_quality(p, int(samples), s["wrong_concentration"])
            else:
                q = p
            quality.append(q)
            cost.append(call_cost(request.input_tokens, request.output_tokens, price_in,
                                  price_out, samples, thinking))
        shape = (self.num_arms,)
        available = jnp.broadcast_to(available[:, None], (self.models, len(self.budgets)))
        quality = jnp.where(available, jnp.stack(quality, axis=1), 0.0).reshape(shape)
        cost = jnp.where(available, jnp.stack(cost, axis=1), 0.0).reshape(shape)
        return quality.astype(jnp.float32), cost.astype(jnp.float32), available.reshape(shape)

    def new_state(self, key: Array, t: Array, params: RoutingParams, balance: Array
                  ) -> RoutingState:
        """The state of round t: a fresh request and its surface."""
        request = self.draw_request(key, params)
        quality, cost, available = self.surface(request, t, params)
        return RoutingState(t=jnp.asarray(t, jnp.int32), z=request.z,
                            difficulty=request.difficulty, quality=quality, cost=cost,
                            available=available, balance=jnp.asarray(balance, jnp.float32))

    def models_at(self, t: Array, params: RoutingParams):
        """(ability, price_in, price_out, available) of every model at round t (shifts)."""
        ability, price_in, price_out = params.ability, params.price_in, params.price_out
        available = jnp.ones((self.models,), bool)
        if self.shift == "none":
            return ability, price_in, price_out, available
        hit = (jnp.arange(self.models) == params.shift_model) & (t >= params.shift_round)
        if self.shift == "price_cut":
            factor = jnp.where(hit, params.shift_size, 1.0)
            price_in, price_out = price_in * factor, price_out * factor
        elif self.shift == "quality_regression":
            ability = ability - jnp.where(hit, params.shift_size, 0.0)
        else:
            before = (jnp.arange(self.models) == params.shift_model) & (t < params.shift_round)
            available = ~before
        return ability, price_in, price_out, available

    def objective(self, state: RoutingState, params: RoutingParams) -> Array:
        """q - lambda * normalised cost of every arm ([K])."""
        return state.quality - params.cost_weight * state.cost / params.cost_scale

    def features(self, state: RoutingState) -> Array:
        """[K, d + 1]: (z, 1) for every arm."""
        row = jnp.concatenate([state.z, jnp.ones((1,), jnp.float32)])
        return jnp.broadcast_to(row, (self.num_arms, self.dim + 1))

    # -- protocol -------------------------------------------------------------------------------
    def reset(self, key: Array, params: RoutingParams) -> RoutingState:
        return self.new_state(key, jnp.zeros((), jnp.int32), params, jnp.zeros(()))

    def observe(self, key: Array, state: RoutingState, params: RoutingParams) -> Observation:
        return Observation(features=self.features(state), t=state.t,
                           expected_rewards=self.objective(state, params))

    def step(self, key: Array, state: RoutingState, action: Array, params: RoutingParams):
        outcome_key, request_key = jax.random.split(key)
        normalised = state.cost / params.cost_scale
        allowance = state.balance + params.budget
        cheapest = jnp.argmin(jnp.where(state.available, normalised, jnp.inf)).astype(jnp.int32)
        action = jnp.asarray(action, jnp.int32)
        served = jnp.where(normalised[action] <= allowance, action, cheapest)
        objective = self.objective(state, params)
        quality = state.quality[served]
        observed = self.draw_outcome(outcome_key, quality, params)
        cost = normalised[served]
        feedback = immediate_feedback(served, self.features(state),
                                      observed - params.cost_weight * cost, state.t,
                                      extras={"quality": observed, "cost": cost})
        metrics = {"quality": quality, "cost": state.cost[served]}
        metrics.update(self.share_metrics(served))
        info = StepInfo(regret=jnp.max(objective) - objective[served], metrics=metrics)
        next_state = self.new_state(request_key, state.t + 1, params, allowance - cost)
        return next_state, feedback, info

    def draw_outcome(self, key: Array, quality: Array, params: RoutingParams) -> Array:
        if self.outcome == "bernoulli":
            return (jax.random.uniform(key) < quality).astype(jnp.float32)
        kappa = params.scalars["graded_concentration"]
        eps = 1e-4
        return jax.random.beta(key, kappa * quality + eps, kappa * (1.0 - quality) + eps)

    def share_metrics(self, served: Array) -> dict[str, Array]:
        if self.shares == "none":
            return {}
        if self.shares == "arm":
            hot = jax.nn.one_hot(served, self.num_arms)
        else:
            hot = jax.nn.one_hot(served // len(self.budgets), self.models)
        names = self.share_names()
        return {name: hot[i] for i, name in enumerate(names)}




# ---------------------------------------------------------------------------------------------
# Calibration (host side; used to make PRESET_MODELS and checked by the tests).
# ---------------------------------------------------------------------------------------------
def mean_single_shot_quality(env: Routing, settings: Mapping[str, Any], abilities,
                             instances: int = 16, requests: int = 4096, seed: int = 0
                             ) -> np.ndarray:
    """Mean single-shot success p_m(x) per model over requests and instances (Monte Carlo)."""
    settings = dict(settings, abilities=[float(a) for a in abilities])
    keys = jax.random.split(jax.random.PRNGKey(seed), instances)

    def one_instance(key):
        params = env.sample_params(key, settings)
        request_keys = jax.random.split(jax.random.fold_in(key, 1), requests)
        requests_ = jax.vmap(lambda k: env.draw_request(k, params))(request_keys)
        p = jax.vmap(lambda r: single_shot(params.ability, params.specialisation, r.z,
                                           r.difficulty, r.discrimination))(requests_)
        return p.mean(axis=0)

    return np.asarray(jax.jit(jax.vmap(one_instance))(keys).mean(axis=0))


def calibrate_abilities(env: Routing, settings: Mapping[str, Any], targets, iterations: int = 30,
                        **kwargs) -> np.ndarray:
    """Bisection per model on theta_m so the mean single-shot quality hits ``targets``."""
    low = np.full(len(targets), -8.0)
    high = np.full(len(targets), 8.0)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        quality = mean_single_shot_quality(env, settings, mid, **kwargs)
        too_good = quality > np.asarray(targets)
        high = np.where(too_good, mid, high)
        low = np.where(too_good, low, mid)
    return 0.5 * (low + high)


def resolved_settings(horizon: int = 1000, **values: Any) -> tuple[dict, dict]:
    """(static, dynamic) settings of ``routing``: defaults, ``values``, resolved and checked.

    A host-side convenience for tests, calibration and notebooks; configs go through
    ``experiments.config`` instead. Dynamic settings that are None (not given) are left out.
    """
    unknown = set(values) - {s.name for s in Routing.settings}
    if unknown:
        raise ConfigError(f"routing: unknown settings {sorted(unknown)}")
    combo = {s.name: s.validate(values.get(s.name, s.default), "env")
             for s in Routing.settings}
    combo = Routing.resolve(combo, {"horizon": horizon})
    Routing.check_cross(combo, "env")
    static = {s.name: combo[s.name] for s in Routing.static_settings()}
    dynamic = {s.name: combo[s.name] for s in Routing.dynamic_settings()
               if combo[s.name] is not None}
    return static, dynamic
