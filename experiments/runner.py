"""The runner: every run of one (environment, learner) pair in one compiled call.

docs/design.md, "The runner". One run is a ``lax.scan`` of (observe, act, step, update) over
rounds; a batch of runs is a ``vmap`` over (run key, environment settings, hyper-parameters). The
scan is outside the ``vmap`` here (``scan(vmap(round))``, which XLA batches the same way as
``vmap(scan(round))``) so that the round index ``t`` stays an unbatched scalar: recording the
metrics at the log-spaced grid is then one dynamic slice of a ``[runs, points, metrics]`` buffer
written at recorded rounds only (a real conditional on ``t`` on XLA:CPU), and a horizon
that the chunk does not divide gets a second, shorter compiled chunk. The metrics are the
sums of the environment's per-round regret and metrics, then the values a learner reports about its
own state (``Learner.metrics`` / ``Learner.report``, recorded as they are); a learner that declares
none adds nothing to the compiled round.

Keys: consumer c of round t draws from ``threefry2x32(run key, (t, c))`` (envs/randomness.py),
the run key derived from (seed, instance) by the config layer. Nothing depends on batch size,
chunk size or device count.

Time is cut into chunks of ``chunk`` rounds: one compiled ``scan`` per chunk, a Python loop over
chunks, between which the host shows progress and may checkpoint the whole carry
(``GroupProgress``; ``experiments/checkpoint.py`` writes it to disk).

Devices and hosts: the run axis of every input is a global array sharded over ``jax.devices()``
(``make_array_from_callback``, so the same code serves one process and several processes joined by
``jax.distributed.initialize()``); each process computes and copies back only the recorded metrics
of the runs its own devices hold (``SimulationResult.runs``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Mapping

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bandits.core import Learner
from envs import randomness
from envs.core import Environment, arm_layout
from experiments import memory


def record_grid(horizon: int, points: int) -> np.ndarray:
    """About ``points`` log-spaced rounds in [1, horizon] (1-based, unique, always with horizon)."""
    grid = np.unique(np.round(np.logspace(0.0, math.log10(horizon), max(points, 1))).astype(int))
    grid = grid[(grid >= 1) & (grid <= horizon)]
    return np.unique(np.append(grid, horizon)).astype(np.int32)


@struct.dataclass
class Carry:
    """Everything that changes from round to round, each leaf with the run axis first."""

    env_state: Any
    learner_state: Any
    sums: jax.Array       # [R, M] cumulative sums of the per-round metrics
    records: jax.Array    # [R, P, M + L] sums, then the L learner-reported values, at the
    #                       recorded rounds


@struct.dataclass
class Constants:
    """What stays fixed during a run, each leaf with the run axis first."""

    params: Any
    hparams: Any
    round_key: jax.Array


@struct.dataclass
class Decision:
    """What one round decides and what the environment answers (one run): the part of the round
    before the learner's update."""

    obs: Any
    action: jax.Array
    env_state: Any
    feedback: Any
    per_round: jax.Array     # [M] this round's regret and metrics


@dataclasses.dataclass
class SimulationResult:
    columns: dict[str, np.ndarray]   # name -> [R, P] (regret, the environment's metrics, the
    #                                  learner's reported values)
    t: np.ndarray                    # [P] recorded rounds (1-based)
    compile_seconds: float
    run_seconds: float
    agent_steps: int
    runs: np.ndarray | None = None   # [R_local] indices of the runs in ``columns`` (None: all)

    @property
    def steps_per_second(self) -> float:
        return self.agent_steps / max(self.run_seconds, 1e-12)


# Options for the runner's own compilations on XLA:CPU (passed to its ``jit``, never set for the
# process: other programs compile as before). YNNPACK fusions took over the per-arm quadratic
# forms of the linear learners (a reduction nested in a reduction) and ran them several times
# slower than XLA's own loops (docs/design.md, "Measured facts").
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.lru_cache(maxsize=None)
def compiler_options(backend: str) -> dict | None:
    """The runner's compiler options for ``backend``: ``CPU_COMPILER_OPTIONS`` on a CPU whose XLA
    knows them (checked once by compiling a trivial function), None elsewhere."""
    if backend != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(
            jnp.float32(0)).compile()
    except Exception:  # noqa: BLE001  (an XLA without these options: compile as it is)
        return None
    return dict(CPU_COMPILER_OPTIONS)


# The most numbers per run an environment state may hold for the step's answer to be
# materialised separately from the new state (``Simulation._run_chunk``).
SMALL_STATE = 8


def small_state(env_state: Any) -> bool:
    """Whether a batched environment state holds at most ``SMALL_STATE`` numbers per run."""
    return sum(int(np.prod(x.shape[1:], dtype=np.int64))
               for x in jax.tree_util.tree_leaves(env_state)) <= SMALL_STATE


# Below this many runs per device the K-armed state stays in [K] arrays and the step's answer is
# not materialised (``arms_by_column``). UCB1 on XLA:CPU, arm by arm against [K] arrays, side by
# side: 0.26x at 10 runs, 0.41x at 100, 0.99x at 300, 1.25x at 1,000, 1.48x at 3,000.
ARMS_BY_COLUMN_MIN_RUNS = 512


def arms_by_column(runs: int, devices: int = 1) -> bool:
    """Whether a batch of ``runs`` over ``devices`` stores per-arm vectors arm by arm
    (``envs.core.arm_layout``): only when each device holds enough runs for the contiguous
    [runs] vectors to repay the extra, smaller operations of the round."""
    return runs >= ARMS_BY_COLUMN_MIN_RUNS * max(devices, 1)


class Simulation:
    """Compiled functions for one (environment, learner, horizon, record grid, chunk).

    materialise: compute the round's choice behind a conditional (default: on CPU only; see
        ``_run_chunk``). options: compiler options of the chunk (default: ``compiler_options``
        of the backend; ``{}`` for none).
    """

    def __init__(self, env: Environment, learner: Learner, horizon: int, record: np.ndarray,
                 chunk: int, sharding: NamedSharding | None = None,
                 materialise: bool | None = None, options: dict | None = None):
        self.env, self.learner = env, learner
        backend = jax.default_backend()
        # See ``_run_chunk``: on XLA:CPU the round's choice is computed behind a conditional.
        self.materialise = (backend == "cpu") if materialise is None else materialise
        self.options = compiler_options(backend) if options is None else (options or None)
        self.horizon, self.chunk = int(horizon), int(chunk)
        self.grid = np.asarray(record, np.int32)
        self.metric_names = ("regret",) + tuple(env.metric_names)
        # Values the learner reports about its state (``Learner.report``), recorded as they are.
        self.report_names = tuple(m.name for m in learner.metrics)
        clash = set(self.report_names) & (set(self.metric_names)
                                          | {m.name for m in env.metrics})
        if clash:
            raise ValueError(f"learner {learner.name!r} reports {sorted(clash)}, which the "
                             f"environment {env.name!r} already records")
        # sharding: every output leaf sharded on its run axis (left to XLA, constants such as
        # the zero records would come out replicated and the next chunk would reshard them).
        self.devices = 1 if sharding is None else len(sharding.device_set)
        self._init = jax.jit(self._init_batch, out_shardings=sharding)
        self._chunk = jax.jit(self._run_chunk, donate_argnums=0, static_argnums=3,
                              out_shardings=sharding, compiler_options=self.options)

    # -- one run --------------------------------------------------------------------------
    def _init_run(self, run_key, instance_key, env_settings, hparams):
        params = self.env.sample_params(instance_key, env_settings)
        reset_key, init_key, round_key = jax.random.split(run_key, 3)
        env_state = self.env.reset(reset_key, params)
        learner_state = self.learner.init(init_key, hparams)
        m = len(self.metric_names)
        carry = Carry(env_state=env_state, learner_state=learner_state,
                      sums=jnp.zeros((m,), jnp.float32),
                      records=jnp.zeros((len(self.grid), m + len(self.report_names)),
                                        jnp.float32))
        return carry, Constants(params=params, hparams=hparams, round_key=round_key)

    def _init_batch(self, run_keys, instance_keys, env_settings, hparams):
        """``_init_run`` for every run, in the arm layout of this batch size (``arm_layout``)."""
        with arm_layout(arms_by_column(run_keys.shape[0], self.devices)):
            return jax.vmap(self._init_run)(run_keys, instance_keys, env_settings, hparams)

    def _choose(self, env_state, learner_state, consts: Constants, t):
        """observe and act for one run in round ``t``: (observation, action)."""
        key = consts.round_key
        obs = self.env.observe(randomness.consumer_key(key, t, randomness.OBSERVE), env_state,
                               consts.params).replace(t=t)
        action = self.learner.act(randomness.consumer_key(key, t, randomness.ACT),
                                  learner_state, obs, consts.hparams)
        # The protocol boundary (docs/design.md, "The two protocols"), checked while tracing
        # (no cost in the compiled round): an action of the spec's arity, as integers.
        spec, who = self.env.spec, self.learner.name or type(self.learner).__name__
        chex.assert_shape(action, () if spec.action_arity == 1 else (spec.action_arity,),
                          custom_message=f"learner {who!r}: act returned a wrong action shape")
        chex.assert_type(action, int, custom_message=f"learner {who!r}: act returned a "
                         f"non-integer action")
        return obs, action

    def _respond(self, env_state, action, consts: Constants, t):
        """The environment's step for one run: (env state, feedback, [M] regret and metrics)."""
        env_state, feedback, info = self.env.step(
            randomness.consumer_key(consts.round_key, t, randomness.STEP), env_state, action,
            consts.params)
        # A Feedback batch of the declared size with a boolean mask, and a scalar regret.
        who = self.env.name or type(self.env).__name__
        size = self.env.spec.feedback_size
        chex.assert_shape([feedback.mask, feedback.reward, feedback.round], (size,),
                          custom_message=f"environment {who!r}: feedback batch of another size "
                          f"than its spec's feedback_size = {size}")
        chex.assert_type(feedback.mask, bool, custom_message=f"environment {who!r}: the "
                         f"feedback mask is not boolean")
        chex.assert_shape(info.regret, (), custom_message=f"environment {who!r}: regret is not a "
                          f"scalar")
        per_round = jnp.stack([info.regret] + [info.metrics[m] for m in self.metric_names[1:]])
        return env_state, feedback, per_round.astype(jnp.float32)

    def _decide(self, env_state, learner_state, consts: Constants, t) -> Decision:
        """observe, act and step for one run in round ``t`` (keys: envs/randomness.py)."""
        obs, action = self._choose(env_state, learner_state, consts, t)
        env_state, feedback, per_round = self._respond(env_state, action, consts, t)
        return Decision(obs=obs, action=action, env_state=env_state, feedback=feedback,
                        per_round=per_round)

    def _learn(self, learner_state, sums, decision: Decision, consts: Constants, t):
        """The learner's update from the round's feedback, and the metric sums (one run).

        ``t`` is put back into the observation unbatched: a decision that crossed the stage
        boundary carries it per run, and learners branch on the round (``lax.cond`` on a refit
        schedule stays a real conditional only while its predicate is not batched).
        """
        learner_state = self.learner.update(learner_state, decision.obs.replace(t=t),
                                            decision.action, decision.feedback, consts.hparams)
        return learner_state, sums + decision.per_round

    def _reported(self, learner_state):
        """[L] the values the learner reports about one run's state, in declaration order."""
        values = self.learner.report(learner_state)
        return jnp.stack([jnp.asarray(values[name], jnp.float32).reshape(())
                          for name in self.report_names])

    def _round(self, env_state, learner_state, sums, consts: Constants, t):
        """One whole round of one run: (env state, learner state, metric sums) after it."""
        decision = self._decide(env_state, learner_state, consts, t)
        learner_state, sums = self._learn(learner_state, sums, decision, consts, t)
        return decision.env_state, learner_state, sums

    def run_alone(self, run_key, instance_key, env_settings, hparams) -> jax.Array:
        """One run by itself, no ``vmap``: [horizon, M] metric sums after every round.

        The same per-run initialisation and round as the batched chunks (so the same keys and
        the same arithmetic) in one plain ``lax.scan`` over all rounds; a run's row of a batch
        must equal it (tested). Jit it to use it; the inputs are one run's slices of a
        ``Group``'s ``run_keys``, ``instance_keys``, ``env_settings``, ``hparams``.
        """
        carry, consts = self._init_run(run_key, instance_key, env_settings, hparams)

        def body(state, t):
            state = self._round(*state, consts, t)
            return state, state[2]

        state = (carry.env_state, carry.learner_state, carry.sums)
        return jax.lax.scan(body, state, jnp.arange(self.horizon, dtype=jnp.int32))[1]

    # -- a chunk of rounds for all runs ---------------------------------------------------
    def _run_chunk(self, carry: Carry, consts: Constants, start, length: int):
        # The layout the initial state of this batch size was made in (``_init_batch``).
        by_arm = arms_by_column(consts.round_key.shape[0], self.devices)
        with arm_layout(by_arm):
            return self._run_rounds(carry, consts, start, length, by_arm)

    def _run_rounds(self, carry: Carry, consts: Constants, start, length: int, by_arm: bool):
        grid = jnp.asarray(self.grid)
        points = len(self.grid)
        choose = jax.vmap(self._choose, in_axes=(0, 0, 0, None))
        respond = jax.vmap(self._respond, in_axes=(0, 0, 0, None))
        learn = jax.vmap(self._learn, in_axes=(0, 0, 0, 0, None))
        reported = jax.vmap(self._reported)
        always = start >= 0            # true, but only known at run time
        answer_materialised = self.materialise and by_arm and small_state(carry.env_state)

        def materialised(stage, *args):
            """stage(*args), behind a conditional on XLA:CPU (see below)."""
            if not self.materialise:
                return stage(*args)
            shapes = jax.eval_shape(stage, *args)
            return jax.lax.cond(always, lambda: stage(*args), lambda: jax.tree_util.tree_map(
                lambda s: jnp.zeros(s.shape, s.dtype), shapes))

        def answer(env_state, action, consts, t):
            """The step's feedback and per-round metrics, without its new state."""
            return respond(env_state, action, consts, t)[1:]

        def body(carry, offset):
            t = start + offset
            # XLA:CPU copies a cheap producer into every fusion that consumes it: without a
            # boundary the whole choice (hashes, index, argmax over arms) is recomputed for each
            # element of each per-arm state update and for every output of the step. The outputs
            # of a conditional are materialised buffers, so the action is computed once per run
            # and round (3.3x on UCB1; docs/design.md, "Measured facts"). GPUs fuse differently
            # and would pay a host round trip per round for the predicate, so there the round
            # runs as it is (``materialise``).
            obs, action = materialised(choose, carry.env_state, carry.learner_state, consts, t)
            if answer_materialised:
                # The step's answer (feedback, regret) behind a second conditional, so that a
                # learner keeping one [runs] vector per arm (``bandits.core.ArmStats``) reads the
                # reward once per arm instead of recomputing the step; the new state is computed
                # outside, from the same inputs. Only for an environment whose state is a few
                # numbers per run (``small_state``): a conditional that returned a state holding
                # queues copied it every round (docs/design.md, "The round").
                feedback, per_round = materialised(answer, carry.env_state, action, consts, t)
                env_state = respond(carry.env_state, action, consts, t)[0]
            else:
                env_state, feedback, per_round = respond(carry.env_state, action, consts, t)
            decision = Decision(obs=obs, action=action, env_state=env_state, feedback=feedback,
                                per_round=per_round)
            learner_state, sums = learn(carry.learner_state, carry.sums, decision, consts, t)
            row = sums
            if self.report_names:          # static: nothing is added when none are declared
                row = jnp.concatenate([sums, reported(learner_state)], axis=1)
            records = record(carry.records, row, t)
            return Carry(decision.env_state, learner_state, sums, records), None

        def record(records, row, t):
            """``records`` with ``row`` written at round t's slot of the grid, if it has one."""
            slot = jnp.minimum(jnp.searchsorted(grid, t + 1), points - 1)
            recorded = grid[slot] == t + 1
            if self.materialise:
                # ``t`` is one scalar for all runs, so on XLA:CPU the write is a real
                # conditional: the rounds off the grid write nothing.
                return jax.lax.cond(recorded, lambda r: jax.lax.dynamic_update_slice_in_dim(
                    r, row[:, None, :], slot, axis=1), lambda r: r, records)
            # On a GPU a conditional would wait for its predicate on the host every round:
            # every round writes, the slot's own values where the round is not recorded.
            kept = jax.lax.dynamic_slice_in_dim(records, slot, 1, axis=1)
            return jax.lax.dynamic_update_slice_in_dim(
                records, jnp.where(recorded, row[:, None, :], kept), slot, axis=1)

        return jax.lax.scan(body, carry, jnp.arange(length, dtype=jnp.int32))[0]

    # -- host side ------------------------------------------------------------------------
    def bytes_per_run(self, run_keys, instance_keys, env_settings, hparams) -> int:
        """Bytes of one run's carry and constants (``jax.eval_shape``: nothing is allocated)."""
        inputs = (run_keys, instance_keys, env_settings, hparams)
        return memory.state_bytes_per_run(self._init_run, *memory.one_run_shapes(*inputs))

    def initial(self, run_keys, instance_keys, env_settings, hparams):
        return self._init(run_keys, instance_keys, env_settings, hparams)

    def chunk_lengths(self) -> list[int]:
        """The distinct chunk lengths: the chunk, and the remainder when it does not divide T."""
        lengths = [self.chunk]
        if self.horizon % self.chunk:
            lengths.append(self.horizon % self.chunk)
        return lengths

    def compile(self, carry, consts) -> tuple[dict, float]:
        """Ahead-of-time compilation: {chunk length: compiled function} and the seconds taken."""
        start = time.perf_counter()
        compiled = {n: self._chunk.lower(carry, consts, jnp.int32(0), n).compile()
                    for n in self.chunk_lengths()}
        return compiled, time.perf_counter() - start

    def run_chunks(self, compiled: dict, carry: Carry, consts: Constants, start: int = 0,
                   on_chunk: Callable[[int, Carry], None] | None = None) -> Carry:
        """Runs rounds [start, horizon) chunk by chunk; on_chunk(rounds_done, carry) after each."""
        for t0 in range(start, self.horizon, self.chunk):
            length = min(self.chunk, self.horizon - t0)
            carry = compiled[length](carry, consts, jnp.int32(t0))
            if on_chunk is not None:
                on_chunk(t0 + length, carry)
        return carry

    def columns(self, records: np.ndarray) -> dict[str, np.ndarray]:
        """The result columns ([R, P] each) of the records: the environment's (from the sums,
        ``Environment.metric_columns``), then the learner's reported values as recorded."""
        points, m = len(self.grid), len(self.metric_names)
        sums = {name: records[:, :points, i] for i, name in enumerate(self.metric_names)}
        columns = self.env.metric_columns(sums, self.grid.astype(np.float64))
        for j, name in enumerate(self.report_names):
            columns[name] = records[:, :points, m + j]
        return columns


@dataclasses.dataclass
class GroupProgress:
    """How far ``simulate`` has got with one group of runs: what a checkpoint must hold.

    ``batch``: index of the batch in progress; ``batch_size``: runs per batch; ``rounds``: rounds
    done in it; ``carry``: the host leaves of its carry (``jax.tree_util`` order, rows =
    ``rows``, the batch-relative indices of the real runs this process holds), None at a batch
    boundary; ``finished``: (run indices, records) of the batches done. Keys are derived from t,
    so nothing else is needed to go on.
    """

    batch: int = 0
    rounds: int = 0
    carry: list | None = None
    rows: np.ndarray | None = None
    finished: list = dataclasses.field(default_factory=list)
    run_seconds: float = 0.0
    batch_size: int | None = None     # runs per compiled call (kept, so a resume splits alike)


def pad_runs(tree: Any, size: int) -> Any:
    """Pads the run axis to ``size`` by repeating run 0 (padded runs are dropped afterwards)."""
    def pad(x):
        x = np.asarray(x)
        if x.shape[0] == size:
            return x
        return np.concatenate([x, np.repeat(x[:1], size - x.shape[0], axis=0)], axis=0)
    return jax.tree_util.tree_map(pad, tree)


def run_sharding(devices: list | None):
    """NamedSharding of the run axis over ``devices`` (docs/design.md, "The runner")."""
    devices = list(devices if devices is not None else jax.devices())
    mesh = Mesh(np.asarray(devices), ("runs",))
    return NamedSharding(mesh, PartitionSpec("runs")), len(devices)


def place_runs(tree: Any, sharding) -> Any:
    """Host arrays -> global arrays sharded on the run axis (each process fills its own shards)."""
    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree_util.tree_map(place, tree)


def local_rows(x: jax.Array, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, host copy of those rows) of the shards of ``x`` this process holds.

    Only rows below ``size`` (the real runs, not the padding) are kept. The copy is a real copy:
    a donated buffer may be reused by the next chunk.
    """
    pieces = {}
    for shard in x.addressable_shards:
        start, stop, _ = shard.index[0].indices(x.shape[0]) if shard.index else (0, 1, 1)
        if start not in pieces:
            pieces[start] = (np.arange(start, stop), np.array(shard.data, copy=True))
    rows = np.concatenate([pieces[k][0] for k in sorted(pieces)])
    data = np.concatenate([pieces[k][1] for k in sorted(pieces)], axis=0)
    keep = rows < (x.shape[0] if size is None else size)
    return rows[keep], data[keep]


def _host_carry(carry: Carry, size: int) -> tuple[np.ndarray, list]:
    leaves = jax.tree_util.tree_leaves(carry)
    rows = local_rows(leaves[0], size)[0]
    return rows, [local_rows(leaf, size)[1] for leaf in leaves]


def _restore_carry(template: Carry, rows: np.ndarray, leaves: list) -> Carry:
    """The carry of ``template`` (same structure and sharding) with the saved rows put back."""
    flat, treedef = jax.tree_util.tree_flatten(template)
    if len(flat) != len(leaves):
        raise ValueError(f"checkpoint holds {len(leaves)} state arrays, the run needs {len(flat)}")
    restored = []
    for current, saved in zip(flat, leaves):
        saved = np.asarray(saved)
        if saved.shape[1:] != current.shape[1:] or saved.dtype != current.dtype:
            raise ValueError(f"checkpoint state array {saved.dtype}{list(saved.shape[1:])} does "
                             f"not match the run's {current.dtype}{list(current.shape[1:])}")
        n = current.shape[0]
        own_rows, own = local_rows(current)          # the fresh state, padding rows included
        at_saved, at_own = np.full(n, -1), np.full(n, -1)
        at_saved[np.asarray(rows, int)] = np.arange(len(rows))
        at_own[own_rows] = np.arange(len(own_rows))

        def fill(index, saved=saved, own=own, at_saved=at_saved, at_own=at_own, n=n):
            wanted = np.arange(*index[0].indices(n))
            block = own[at_own[wanted]]               # padding rows keep the fresh state
            hit = at_saved[wanted] >= 0
            block[hit] = saved[at_saved[wanted][hit]]
            return block[(slice(None),) + tuple(index[1:])]

        restored.append(jax.make_array_from_callback(current.shape, current.sharding, fill))
    return jax.tree_util.tree_unflatten(treedef, restored)


def simulate(env: Environment, learner: Learner, *, run_keys: np.ndarray,
             instance_keys: np.ndarray, env_settings: Mapping[str, np.ndarray],
             hparams: Mapping[str, np.ndarray], horizon: int, record: np.ndarray,
             chunk: int | None = None, batch: int | None = None, devices: list | None = None,
             progress: Callable[[int], None] | None = None,
             resume: GroupProgress | None = None, checkpoint_every: int = 0,
             on_checkpoint: Callable[[GroupProgress], None] | None = None,
             checkpoint_seconds: float = 0.0,
             materialise: bool | None = None,
             on_plan: Callable[[str], None] | None = None) -> SimulationResult:
    """Runs every run (leading axis of the inputs) for ``horizon`` rounds.

    run_keys, instance_keys: [R, 2] uint32 raw PRNG keys. env_settings, hparams: dicts of
    [R, ...] arrays. batch: runs per compiled call; by default as many as fit the memory budget
    (``experiments/memory.py``: the per-run state from ``jax.eval_shape``, before anything is
    compiled; a batch or a single run that cannot fit is a ConfigError); on_plan(line) is told
    the choice when the runs are split. devices: shard the run axis over these (default: all
    devices, of every process). progress(n) is called with the number of agent-steps done after
    each chunk. resume: continue from a saved GroupProgress;
    on_checkpoint(GroupProgress) is called every ``checkpoint_every`` chunks (0: never), after
    any chunk that ends ``checkpoint_seconds`` or more after the last call (0: never; wall
    clock, so use it with one process only: processes must stop at the same round), and at
    every batch boundary but the last. With several processes, the result holds the runs of this
    process's devices (``SimulationResult.runs``). materialise: compute each round's choice
    behind a conditional (default: on XLA:CPU only; ``Simulation``).
    """
    runs = int(np.asarray(run_keys).shape[0])
    chunk = int(chunk or default_chunk(horizon))
    chunk = max(1, min(chunk, horizon))
    sharding, n_devices = run_sharding(devices)
    sim = Simulation(env, learner, horizon, record, chunk, sharding, materialise=materialise)
    inputs = (np.asarray(run_keys, np.uint32), np.asarray(instance_keys, np.uint32),
              dict(env_settings), dict(hparams))
    if resume is not None and resume.batch_size:
        batch = resume.batch_size            # a resumed group keeps its batches
    bytes_per_run = sim.bytes_per_run(*inputs)
    budget = memory.budget_for(list(sharding.mesh.devices.flat))
    batch = memory.choose_batch(runs, bytes_per_run, n_devices, budget, requested=batch)
    if on_plan is not None and batch < runs:
        on_plan(memory.describe(batch, runs, bytes_per_run, budget))
    batch = int(math.ceil(min(batch, runs) / n_devices) * n_devices)
    state = dataclasses.replace(resume) if resume is not None else GroupProgress()
    state.batch_size = batch
    state.finished = list(state.finished)
    compiled, compile_seconds = None, 0.0
    checkpointing = on_checkpoint is not None and (checkpoint_every > 0 or checkpoint_seconds > 0)
    last_saved = [time.perf_counter()]
    for index, lo in enumerate(range(0, runs, batch)):
        if index < state.batch:
            continue
        part = jax.tree_util.tree_map(lambda x: np.asarray(x)[lo:lo + batch], inputs)
        size = part[0].shape[0]
        carry, consts = sim.initial(*place_runs(pad_runs(part, batch), sharding))
        if compiled is None:
            compiled, compile_seconds = sim.compile(carry, consts)
        first = 0
        if index == state.batch and state.carry is not None:
            carry, first = _restore_carry(carry, state.rows, state.carry), state.rounds
        start = time.perf_counter()
        done, chunks = [first], [0]

        def report(rounds_done: int, carry: Carry) -> None:
            if progress is not None:
                jax.block_until_ready(carry.sums)
                progress(size * (rounds_done - done[0]))
            done[0] = rounds_done
            chunks[0] += 1
            now = time.perf_counter()
            due = ((checkpoint_every > 0 and chunks[0] % checkpoint_every == 0)
                   or (checkpoint_seconds > 0 and now - last_saved[0] >= checkpoint_seconds))
            if checkpointing and rounds_done < horizon and due:
                last_saved[0] = now
                rows, leaves = _host_carry(carry, size)
                on_checkpoint(dataclasses.replace(
                    state, batch=index, rounds=rounds_done, carry=leaves, rows=rows,
                    run_seconds=state.run_seconds + time.perf_counter() - start))

        carry = sim.run_chunks(compiled, carry, consts, start=first, on_chunk=report)
        rows, records = local_rows(carry.records, size)
        state.run_seconds += time.perf_counter() - start
        state.finished.append((lo + rows, records))
        state.batch, state.rounds, state.carry, state.rows = index + 1, 0, None, None
        if checkpointing and lo + batch < runs:
            last_saved[0] = time.perf_counter()
            on_checkpoint(dataclasses.replace(state))
    held = np.concatenate([r for r, _ in state.finished]) if state.finished else np.zeros(0, int)
    order = np.argsort(held, kind="stable")
    records = (np.concatenate([x for _, x in state.finished], axis=0)[order] if state.finished
               else np.zeros((0, len(sim.grid), len(sim.metric_names) + len(sim.report_names)),
                             np.float32))
    return SimulationResult(columns=sim.columns(records), t=sim.grid.copy(),
                            compile_seconds=compile_seconds, run_seconds=state.run_seconds,
                            agent_steps=runs * horizon,
                            runs=held[order].astype(np.int64))


def default_chunk(horizon: int) -> int:
    """About 100 chunks (progress and checkpoints every 1%), at least 100 rounds each.

    A divisor of the horizon near that target is preferred: then one chunk length is compiled,
    not two (the remainder chunk costs a second compilation).
    """
    target = max(100, math.ceil(horizon / 100))
    if target >= horizon:
        return horizon
    for delta in range(0, target // 2):
        for candidate in (target + delta, target - delta):
            if 0 < candidate <= horizon and horizon % candidate == 0:
                return candidate
    return target
