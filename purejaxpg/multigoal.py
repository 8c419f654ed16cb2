"""The multi-goal point mass of Haarnoja et al. (2017, sec. 6.1), in the gymnax interface.

A 2-D point mass starts near the origin; four goals sit symmetrically around it. Going to any one
of them is optimal, so a maximum-entropy policy keeps all four ways open near the origin, while a
deterministic or unimodal policy commits to one. The paper's figure 2 shows soft Q-learning's
sampler doing the former.

Dynamics, per step (``MultiGoalParams`` holds every number):

    a     = clip(action, -1, 1)                                     (velocity)
    x'    = clip(x + a + noise_std * eps, -bound, bound),  eps ~ N(0, I)
    d     = min_g ||x' - g||                                        (distance to the nearest goal)
    r     = -action_cost ||a||^2 - distance_cost d^2 + goal_reward [d < goal_radius]
    terminated = d < goal_radius;  truncated at max_steps_in_episode (gymnax's time limit)

The defaults are the scales of the paper's environment as its authors released it (goals at
distance 5 on the axes, radius 1, goal reward 10, action cost 30, squared-distance cost 1, start
N(0, 0.1^2 I), 30 steps); the observation is the position.

    env = MultiGoal(); params = env.default_params
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

#: the four goals of the paper, on the axes at distance 5 from the origin
GOALS = ((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0))


@struct.dataclass
class MultiGoalState(environment.EnvState):
    """``position [2]`` and the step counter ``time``."""

    position: jax.Array
    time: int


@struct.dataclass
class MultiGoalParams(environment.EnvParams):
    """The environment's constants (see the module docstring for the formulas)."""

    goals: tuple = struct.field(pytree_node=False, default=GOALS)
    goal_radius: float = 1.0
    goal_reward: float = 10.0
    action_cost: float = 30.0
    distance_cost: float = 1.0
    init_std: float = 0.1
    noise_std: float = 0.0
    bound: float = 7.0
    max_steps_in_episode: int = 30


def nearest_goal_distance(position: jax.Array, goals: Any) -> jax.Array:
    """``[...]`` the distance min_g ||position - g|| of positions ``[..., 2]`` to the nearest of ``goals [G, 2]``."""
    diff = position[..., None, :] - jnp.asarray(goals, jnp.float32)
    return jnp.sqrt(jnp.min(jnp.sum(jnp.square(diff), axis=-1), axis=-1))


def nearest_goal(position: jax.Array, goals: Any) -> jax.Array:
    """``[...]`` int index of the goal nearest to each position ``[..., 2]``."""
    diff = position[..., None, :] - jnp.asarray(goals, jnp.float32)
    return jnp.argmin(jnp.sum(jnp.square(diff), axis=-1), axis=-1)


class MultiGoal(environment.Environment[MultiGoalState, MultiGoalParams]):
    """The multi-goal point mass (see the module docstring); registered nowhere: pass the object itself."""

    def __init__(self):
        super().__init__()
        self.obs_shape = (2,)

    @property
    def default_params(self) -> MultiGoalParams:
        return MultiGoalParams()

    @property
    def name(self) -> str:
        return "MultiGoal"

    @property
    def num_actions(self) -> int:
        return 2

    def reset_env(self, key: jax.Array, params: MultiGoalParams) -> tuple[jax.Array, MultiGoalState]:
        position = jnp.clip(params.init_std * jax.random.normal(key, (2,)), -params.bound, params.bound)
        state = MultiGoalState(position=position, time=0)
        return self.get_obs(state), state

    def step_env(self, key: jax.Array, state: MultiGoalState, action: jax.Array, params: MultiGoalParams):
        velocity = jnp.clip(jnp.asarray(action, jnp.float32).reshape(2), -1.0, 1.0)
        noise = params.noise_std * jax.random.normal(key, (2,))
        position = jnp.clip(state.position + velocity + noise, -params.bound, params.bound)
        distance = nearest_goal_distance(position, params.goals)
        reached = distance < params.goal_radius
        reward = (-params.action_cost * jnp.sum(jnp.square(velocity)) - params.distance_cost * jnp.square(distance)
                  + params.goal_reward * reached)
        state = MultiGoalState(position=position, time=state.time + 1)
        return self.get_obs(state), state, reward, reached, {}

    def get_obs(self, state: MultiGoalState, params=None, key=None) -> jax.Array:
        return state.position

    def is_terminated(self, state: MultiGoalState, params: MultiGoalParams) -> jax.Array:
        return nearest_goal_distance(state.position, params.goals) < params.goal_radius

    def action_space(self, params: MultiGoalParams | None = None) -> spaces.Box:
        return spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=jnp.float32)

    def observation_space(self, params: MultiGoalParams) -> spaces.Box:
        return spaces.Box(low=-params.bound, high=params.bound, shape=(2,), dtype=jnp.float32)

    def state_space(self, params: MultiGoalParams) -> spaces.Dict:
        return spaces.Dict({"position": spaces.Box(-params.bound, params.bound, (2,), jnp.float32),
                            "time": spaces.Discrete(params.max_steps_in_episode)})
