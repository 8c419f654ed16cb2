"""D4PG (Barth-Maron et al. 2018, "Distributed Distributional Deterministic Policy Gradients").

DDPG's deterministic actor mu(s) in [-1, 1]^D and exploration noise (`purejaxpg.algorithms.td3`),
with D4PG's changes to the critic and its replay, each a static setting:

* a categorical distributional critic: logits over ``num_atoms`` atoms z_i = linspace(v_min, v_max)
  (`purejaxpg.networks.CategoricalQCritic`), trained by the cross-entropy between its distribution
  and the target distribution (`purejaxpg.targets.categorical_cross_entropy`, eq. 4 of the paper);
* the target distribution: the N-step return of a replayed window of ``n_step`` consecutive steps
  of one env, stopped at the first episode end (`purejaxpg.targets.n_step_window_return`;
  truncation bootstraps, termination does not), plus gamma^k times the target critic's
  distribution at (s_k, mu'(s_k)), projected onto the support (`purejaxpg.targets.categorical_projection`);
* the actor: the deterministic policy gradient of the expected value Q(s, mu(s)) = sum_i p_i z_i (eq. 6);
* prioritised replay as an option (``prioritised=True``; Schaul et al. 2016): windows are drawn
  with probability proportional to priority^alpha, the priority being the window's cross-entropy
  (as in the paper), the loss weighted by (N P(i))^-beta normalised by its maximum.

The paper's distributed actors (K parallel collectors) are this library's ``num_envs``. Its
replay (`purejaxpg.replay.SequenceReplay`) is the same flat ring of steps as DDPG's, read as
windows; everything else (warm-up, targets' Polyak averaging, the gradient-step loop) is
`purejaxpg.algorithms.offpolicy`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxpg import objectives, replay, targets
from purejaxpg.algorithms import td3
from purejaxpg.algorithms.offpolicy import _positive_int
from purejaxpg.config import hp, hparams
from purejaxpg.errors import ConfigError
from purejaxpg.networks import CategoricalQCritic

#: added to the cross-entropy before it becomes a priority, so that no window's priority reaches 0
PRIORITY_EPS = 1e-6


@hparams
class D4PGHParams(td3.TD3HParams):
    """D4PG's dynamic hyperparameters (the paper's Adam 1e-4 for both networks; no target smoothing)."""

    actor_lr: float = hp(1e-4, low=0.0, low_open=True, doc="Adam learning rate of the actor.")
    critic_lr: float = hp(1e-4, low=0.0, low_open=True, doc="Adam learning rate of the critic.")
    exploration_noise: float = hp(0.3, low=0.0, doc="Std of the behaviour noise (the paper's 0.3; the OU sigma).")
    target_noise: float = hp(0.0, low=0.0, doc="Std of TD3's target policy smoothing noise (0: D4PG's target).")
    priority_exponent: float = hp(0.6, low=0.0, high=1.0, doc="alpha: sampling probability ~ priority^alpha "
                                  "(prioritised=True).")
    importance_exponent: float = hp(0.4, low=0.0, high=1.0, doc="beta of the importance weights (N P(i))^-beta "
                                    "(prioritised=True; 0: no correction).")


@struct.dataclass
class NStepBatch:
    """A minibatch of N-step transitions, each a window's first step and its bootstrap.

    Attributes:
      obs: ``[B, ...]`` s_0; action: ``[B, D]`` a_0 (in [-1, 1]);
      reward: ``[B]`` the N-step return G; discount: ``[B]`` gamma^(e+1), or 0 if step e terminated;
      next_obs: ``[B, ...]`` the bootstrap observation, next_obs of step e (see `targets.n_step_window_return`).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array


@dataclasses.dataclass(frozen=True)
class D4PG(td3.TD3):
    """D4PG; the fields are its static settings (see `td3.TD3` and `offpolicy.OffPolicyAlgorithm` for the rest).

    Attributes:
      num_atoms: atoms of the critic's support (the paper's 51).
      v_min, v_max: ends of the support; returns outside it are clipped to it. The paper's
        [-150, 150] is for rewards in [0, 1] per step; set them to the env's range of returns.
      n_step: N of the N-step return (the paper's 5); 1 is the one-step distributional target.
      prioritised: prioritised replay (``priority_exponent``, ``importance_exponent``) instead of uniform.
    """

    name: ClassVar[str] = "d4pg"
    HParams: ClassVar[type] = D4PGHParams

    policy_delay: int = 1
    num_critics: int = 1
    num_atoms: int = 51
    v_min: float = -150.0
    v_max: float = 150.0
    n_step: int = 5
    prioritised: bool = False

    def validate(self, spec, config) -> None:
        super().validate(spec, config)
        if self.num_critics != 1:
            raise ConfigError(f"num_critics={self.num_critics!r}: d4pg has one distributional critic (a minimum over "
                              "distributions is not defined); set num_critics=1.")
        _positive_int("n_step", self.n_step)
        if isinstance(self.num_atoms, bool) or not isinstance(self.num_atoms, (int, np.integer)) or self.num_atoms < 2:
            raise ConfigError(f"num_atoms={self.num_atoms!r} must be an integer >= 2.")
        if not (math.isfinite(self.v_min) and math.isfinite(self.v_max) and self.v_min < self.v_max):
            raise ConfigError(f"v_min={self.v_min!r}, v_max={self.v_max!r}: the support needs finite v_min < v_max; "
                              "set them around the env's range of discounted returns.")
        reach = (self.n_step - 1) * config.num_envs
        if config.batch_size + reach > self.buffer_size:
            raise ConfigError(f"buffer_size={self.buffer_size} cannot hold one iteration ({config.batch_size} steps) "
                              f"plus the {reach} steps an {self.n_step}-step window reaches back; raise buffer_size.")
        if self.min_transitions(config.num_envs) > config.num_iterations * config.batch_size:
            raise ConfigError(f"the run's {config.num_iterations * config.batch_size} env steps never fill one "
                              f"{self.n_step}-step window per env; raise total_timesteps or lower n_step.")

    # ---- the distributional critic ------------------------------------------------------------
    def make_critic(self, spec):
        return CategoricalQCritic(len(spec.obs_shape), self.num_atoms, tuple(self.hidden), self.activation)

    def support(self) -> jax.Array:
        """``[num_atoms]`` the atoms z_i = linspace(v_min, v_max, num_atoms)."""
        return jnp.linspace(self.v_min, self.v_max, self.num_atoms, dtype=jnp.float32)

    def q_value(self, state, obs: jax.Array, action: jax.Array, critic_params=None) -> jax.Array:
        """``[B]`` Q(s, a) = sum_i softmax(logits)_i z_i, the mean of the critic's distribution."""
        logits = state.q_values(obs, action, critic_params)[0]
        return jnp.sum(jax.nn.softmax(logits, axis=-1) * self.support(), axis=-1)

    def critic_target(self, state, batch: NStepBatch, key, hparams: D4PGHParams):
        """``[B, num_atoms]`` the projected target distribution of G + discount * Z'(s_e', mu'(s_e'))."""
        next_action = targets.smoothed_target_action(state.actor.apply(state.target["actor"], batch.next_obs), key,
                                                     hparams.target_noise, hparams.target_noise_clip)
        next_logits = state.q_values(batch.next_obs, next_action, state.target["critic"])[0]
        return targets.categorical_projection(self.support(), jax.nn.softmax(next_logits, axis=-1), batch.reward,
                                              batch.discount)

    def critic_loss(self, critic_params, state, batch: NStepBatch, target, info, hparams):
        logits = state.q_values(batch.obs, batch.action, critic_params)[0]
        cross_entropy = targets.categorical_cross_entropy(target, logits)
        q = jnp.sum(jax.nn.softmax(logits, axis=-1) * self.support(), axis=-1)
        return jnp.mean(info["weights"] * cross_entropy), ({"q_mean": jnp.mean(q)}, cross_entropy)

    def actor_loss(self, actor_params, state, obs, key, hparams):
        return objectives.dpg_actor_loss(self.q_value(state, obs, state.actor.apply(actor_params, obs))), {}

    # ---- N-step windows, uniform or prioritised ------------------------------------------------
    def _replay(self) -> replay.SequenceReplay:
        return replay.SequenceReplay(self.buffer_size, self.batch_size, self.n_step, self.prioritised)

    def init_replay(self, spec):
        obs = jnp.zeros(spec.obs_shape, jnp.float32)
        flag = jnp.zeros((), bool)
        return self._replay().init(replay.Step(obs, jnp.zeros((spec.action_dim,), jnp.float32), jnp.zeros(()), flag,
                                               flag, obs))

    def add_to_replay(self, state, batch):
        return self._replay().add(state.buffer, replay.steps_from_batch(batch, self._from_env(state, batch.action)))

    def replay_size(self, buffer):
        return self._replay().size(buffer)

    def min_transitions(self, num_envs: int) -> int:
        """The first complete window: n_step steps of one env, (n_step - 1) N + 1 steps in all."""
        return (self.n_step - 1) * num_envs + 1

    def sample_replay(self, state, key, hparams: D4PGHParams):
        """``(NStepBatch [B], {"start": window slots [B], "weights": importance weights [B]})``."""
        steps, start, probabilities = self._replay().sample(state.buffer, key)
        ret, discount, end = targets.n_step_window_return(steps.reward, steps.terminated, steps.truncated, hparams.gamma)
        bootstrap_obs = jax.vmap(lambda x, e: x[e])(steps.next_obs, end)
        batch = NStepBatch(steps.obs[:, 0], steps.action[:, 0], ret, discount, bootstrap_obs)
        if self.prioritised:
            weights = replay.importance_weights(probabilities, hparams.importance_exponent)
        else:
            weights = jnp.ones_like(ret)
        return batch, {"start": start, "weights": weights}

    def after_critic_step(self, state, info, aux, hparams: D4PGHParams):
        """Prioritised: the drawn windows' priorities become their cross-entropy (before the step)."""
        if not self.prioritised:
            return state
        buffer = self._replay().set_priorities(state.buffer, info["start"], aux + PRIORITY_EPS,
                                               hparams.priority_exponent)
        return state.replace(buffer=buffer)
