"""MADDPG: multi-agent deep deterministic policy gradient (Lowe et al. 2017, "Multi-Agent
Actor-Critic for Mixed Cooperative-Competitive Environments").

Decentralised actors, centralised critics. Each agent i has

* an actor mu_i(o_i) reading only its own observation (`purejaxpg.networks.MultiAgentActor`:
  A separate MLPs, one batched module);
* a critic Q_i(x, a_1, ..., a_A) reading every agent's observation and action
  (`purejaxpg.networks.MultiAgentQCritic`), regressed on its own reward:
  y_i = r_i + gamma (1 - terminated) Q'_i(x', a'_1, ..., a'_A), a'_j from the target actors;
* an actor step along grad Q_i(x, a_1, ..., mu_i(o_i), ..., a_A), the other agents' actions taken
  from the replay (`purejaxpg.objectives.counterfactual_joint_actions`);
* target networks (Polyak rate tau) and the replay of `purejaxpg.algorithms.offpolicy`.

Discrete actions (MPE's five moves) use the paper's Gumbel-softmax relaxation
(`purejaxpg.distributions.gumbel_softmax`): an actor's output is a point of the simplex, the soft
sample softmax((logits + g) / temperature); the env receives its argmax (an exact sample of the
policy), the replay and the critics the soft vector, as in the authors' released code, which also
adds ``logit_penalty * mean(logits^2)`` to the actor loss. ``centralised_critic=False`` gives
the independent-learner baseline of the paper (DDPG per agent, Q_i(o_i, a_i)).

Train it on a multi-agent env (``jaxmarl/<name>``): the loop hands it the joint view
(observations ``[N, A, obs_dim]``, actions ``[N, A]``, rewards ``[N, A]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from purejaxpg import objectives, replay, rollout, targets
from purejaxpg.algorithms import common, offpolicy
from purejaxpg.config import hp, hparams
from purejaxpg.distributions import gumbel_softmax
from purejaxpg.errors import ConfigError
from purejaxpg.networks import MultiAgentActor, MultiAgentQCritic


@hparams
class MADDPGHParams(offpolicy.OffPolicyHParams):
    """MADDPG's dynamic hyperparameters (the paper's: Adam 1e-2, gamma 0.95, tau 0.01)."""

    actor_lr: float = hp(1e-2, low=0.0, low_open=True, doc="Adam learning rate of the actors.")
    critic_lr: float = hp(1e-2, low=0.0, low_open=True, doc="Adam learning rate of the critics.")
    gamma: float = hp(0.95, low=0.0, high=1.0, doc="Discount factor.")
    tau: float = hp(0.01, low=0.0, high=1.0, doc="Polyak rate of the target networks (1: hard copy).")
    temperature: float = hp(1.0, low=0.0, low_open=True, doc="Gumbel-softmax temperature of the actors' samples.")
    logit_penalty: float = hp(1e-3, low=0.0, doc="Weight of mean(logits^2) in the actor loss (the authors' code).")


@dataclasses.dataclass(frozen=True)
class MADDPG(offpolicy.OffPolicyAlgorithm):
    """MADDPG; the fields are its static settings (see `offpolicy.OffPolicyAlgorithm` for the shared ones).

    Attributes:
      centralised_critic: Q_i reads all agents' observations and actions (MADDPG); False: only
        agent i's own (independent DDPG learners, the paper's baseline).
    """

    name: ClassVar[str] = "maddpg"
    HParams: ClassVar[type] = MADDPGHParams
    discrete: ClassVar[bool | None] = True
    #: the loop hands MADDPG a multi-agent env's agents jointly
    rollout_options: ClassVar[rollout.RolloutOptions] = rollout.RolloutOptions(joint_agents=True)

    centralised_critic: bool = True
    num_critics: int = 1
    hidden: tuple[int, ...] = (64, 64)
    batch_size: int = 1024

    def validate(self, spec, config) -> None:
        if not spec.joint_agents:
            raise ConfigError(f"maddpg needs a multi-agent env (e.g. 'jaxmarl/MPE_simple_spread_v3'); "
                              f"env_id={spec.env_id!r} has one agent.")
        super().validate(spec, config)

    def make_actor(self, spec):
        return MultiAgentActor(spec.num_agents, spec.num_actions, tuple(self.hidden), self.activation)

    def make_critic(self, spec):
        return MultiAgentQCritic(spec.num_agents, tuple(self.hidden), self.activation, self.centralised_critic)

    def action_shape(self, spec) -> tuple[int, ...]:
        """``[A, K]``: each agent's action as a point of the simplex."""
        return (spec.num_agents, spec.num_actions)

    def exploration_hparams(self, hparams: MADDPGHParams) -> dict:
        return {"temperature": jnp.asarray(hparams.temperature, jnp.float32)}

    def explore(self, state, obs, key, actor_state):
        """``([N, A, K] soft Gumbel-softmax samples of the actors, actor_state)``."""
        logits = state.actor.apply(state.params["actor"], obs)
        return gumbel_softmax(logits, key, state.explore["temperature"]), actor_state

    def greedy_action(self, state, obs):
        """``obs [N, A, obs_dim] -> [N, A]``: each actor's most likely action."""
        return jnp.argmax(state.actor.apply(state.params["actor"], obs), axis=-1)

    def act(self, state, obs, key, actor_state=()):
        """``obs [N, A, obs_dim] -> (action [N, A] int, {"action_vector": [N, A, K]}, actor_state)``:
        the argmax of each actor's soft sample (uniform random actions during warm-up); the replay
        keeps the soft vector."""
        explore_key, uniform_key = jax.random.split(key)
        soft, actor_state = self.explore(state, obs, explore_key, actor_state)
        num_actions = soft.shape[-1]
        uniform = jax.random.randint(uniform_key, soft.shape[:-1], 0, num_actions)
        warm_up = state.env_steps < self.learning_starts
        action = jnp.where(warm_up, uniform, jnp.argmax(soft, axis=-1))
        vector = jnp.where(warm_up, jax.nn.one_hot(uniform, num_actions, dtype=soft.dtype), soft)
        return action, {"action_vector": vector}, actor_state

    def add_to_replay(self, state, batch):
        return replay.add(self._buffer(), state.buffer, replay.from_batch(batch, batch.extras["action_vector"]))

    def critic_target(self, state, batch, key, hparams: MADDPGHParams):
        """``[B, A]``: y_i = r_i + gamma (1 - terminated) min_k Q'_k,i(x', a') with a'_j soft samples of
        the target actors at o'_j."""
        next_logits = state.actor.apply(state.target["actor"], batch.next_obs)
        next_action = gumbel_softmax(next_logits, key, hparams.temperature)
        next_q = state.q_values(batch.next_obs, next_action, state.target["critic"])  # [K, B, A]
        return targets.clipped_double_q_target(batch.reward, batch.terminated[:, None], next_q, hparams.gamma)

    def actor_inputs(self, batch):
        return batch.obs, batch.action

    def actor_loss(self, actor_params, state, inputs, key, hparams: MADDPGHParams):
        """sum_i -mean_b Q_i(x, a_1, ..., a_i = relaxed mu_i(o_i), ..., a_A) + penalty mean(logits^2)."""
        obs, joint_action = inputs
        logits = state.actor.apply(actor_params, obs)  # [B, A, K]
        own = gumbel_softmax(logits, key, hparams.temperature)
        if self.centralised_critic:
            variants = objectives.counterfactual_joint_actions(joint_action, own)  # [A, B, A, K]
            q_all = jax.vmap(lambda a: state.q_values(obs, a)[0])(variants)  # [A(variant), B, A(critic)]
            q = jnp.diagonal(q_all, axis1=0, axis2=2)  # [B, A]: critic i at variant i
        else:
            q = state.q_values(obs, own)[0]
        penalty = jnp.sum(jnp.mean(logits ** 2, axis=(0, 2)))
        loss = -jnp.sum(jnp.mean(q, axis=0)) + hparams.logit_penalty * penalty
        return loss, {"logit_sq": penalty / logits.shape[1]}

    def after_actor_step(self, state, aux, hparams):
        return state, {"logit_sq": aux["logit_sq"]}
