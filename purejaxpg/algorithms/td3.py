"""TD3 (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods") and DDPG
(Lillicrap et al. 2016) as its special case.

A deterministic actor mu(s) in [-1, 1]^D trained by the deterministic policy gradient
(Silver et al. 2014; `purejaxpg.objectives.dpg_actor_loss` on the first critic), explored with
Gaussian or Ornstein-Uhlenbeck noise (`purejaxpg.exploration`). TD3's three changes to DDPG are
static settings and hyperparameters here:

* clipped double Q: ``num_critics=2``, the target takes the minimum (`purejaxpg.targets.clipped_double_q_target`);
* delayed policy updates: ``policy_delay=2`` (the actor and the target networks step every 2nd critic step);
* target policy smoothing: ``target_noise`` / ``target_noise_clip`` (`purejaxpg.targets.smoothed_target_action`).

``DDPG`` is the same class with one critic, no delay and no smoothing. Everything else (replay,
warm-up, targets' Polyak averaging, the gradient-step loop) is `purejaxpg.algorithms.offpolicy`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from purejaxpg import exploration, objectives, targets
from purejaxpg.algorithms import offpolicy
from purejaxpg.config import hp, hparams
from purejaxpg.errors import ConfigError
from purejaxpg.networks import DeterministicActor

NOISES = ("gaussian", "ou")


@hparams
class TD3HParams(offpolicy.OffPolicyHParams):
    """TD3's dynamic hyperparameters; noise scales are in the [-1, 1] action units (half the env's range)."""

    exploration_noise: float = hp(0.1, low=0.0, doc="Std of the behaviour noise (Gaussian; the OU process's sigma).")
    target_noise: float = hp(0.2, low=0.0, doc="Std of the target policy smoothing noise.")
    target_noise_clip: float = hp(0.5, low=0.0, doc="Clip of the target policy smoothing noise.")
    ou_theta: float = hp(0.15, low=0.0, low_open=True, doc="Mean reversion of the OU noise (noise='ou').")


@dataclasses.dataclass(frozen=True)
class TD3(offpolicy.OffPolicyAlgorithm):
    """TD3; the fields are its static settings (see `offpolicy.OffPolicyAlgorithm` for the shared ones).

    Attributes:
      noise: "gaussian" (independent at each step) or "ou" (Ornstein-Uhlenbeck, one process per env,
        carried across steps and iterations in the rollout's actor state; not reset at episode ends).
      ou_dt: the OU process's time step.
    """

    name: ClassVar[str] = "td3"
    HParams: ClassVar[type] = TD3HParams

    policy_delay: int = 2
    num_critics: int = 2
    noise: str = "gaussian"
    ou_dt: float = 1e-2

    def validate(self, spec, config) -> None:
        super().validate(spec, config)
        if self.noise not in NOISES:
            raise ConfigError(f"noise={self.noise!r} is not one of {', '.join(repr(n) for n in NOISES)}.")

    def make_actor(self, spec):
        return DeterministicActor(spec.action_dim, len(spec.obs_shape), tuple(self.hidden), self.activation)

    def exploration_hparams(self, hparams: TD3HParams) -> dict:
        return {"std": jnp.asarray(hparams.exploration_noise, jnp.float32),
                "ou_theta": jnp.asarray(hparams.ou_theta, jnp.float32)}

    def init_actor(self, learner_state, config, key):
        """``{"ou": [N, D] zeros}`` with ``noise="ou"``, else ``()``."""
        if self.noise != "ou":
            return ()
        return {"ou": jnp.zeros((config.num_envs, learner_state.spec.action_dim), jnp.float32)}

    def explore(self, state, obs, key, actor_state):
        mean = state.actor.apply(state.params["actor"], obs)
        if self.noise == "ou":
            noise = exploration.ou_step(actor_state["ou"], key, state.explore["ou_theta"], state.explore["std"],
                                        self.ou_dt)
            return mean + noise, {"ou": noise}
        return mean + exploration.gaussian_noise(key, mean.shape, state.explore["std"]), actor_state

    def critic_target(self, state, batch, key, hparams: TD3HParams):
        next_action = targets.smoothed_target_action(state.actor.apply(state.target["actor"], batch.next_obs), key,
                                                     hparams.target_noise, hparams.target_noise_clip)
        next_q = state.q_values(batch.next_obs, next_action, state.target["critic"])
        return targets.clipped_double_q_target(batch.reward, batch.terminated, next_q, hparams.gamma)

    def actor_loss(self, actor_params, state, obs, key, hparams):
        q = state.q_values(obs, state.actor.apply(actor_params, obs))[0]
        return objectives.dpg_actor_loss(q), {}


@hparams
class DDPGHParams(TD3HParams):
    """DDPG's dynamic hyperparameters: TD3's without target smoothing by default."""

    target_noise: float = hp(0.0, low=0.0, doc="Std of target policy smoothing noise (0: DDPG's target).")


@dataclasses.dataclass(frozen=True)
class DDPG(TD3):
    """DDPG (Lillicrap et al. 2016): TD3 with one critic, the actor stepping with every critic step
    and no target smoothing; Gaussian exploration by default (``noise="ou"`` for the paper's OU)."""

    name: ClassVar[str] = "ddpg"
    HParams: ClassVar[type] = DDPGHParams

    policy_delay: int = 1
    num_critics: int = 1
