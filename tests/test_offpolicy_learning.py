"""DDPG, TD3 and SAC learn Pendulum-v1: a quick check in the default suite, the issue's budget under -m slow.

A uniformly random policy scores about -1200 on Pendulum-v1 and a good one -150 to -200 (the
start angle is random, so the last episodes of a seed spread by about 100). Returns here are the
training episodes', with exploration noise.
"""

import pytest

import _learning

QUICK = dict(total_timesteps=6_000, learning_starts=500, hidden=(64, 64))


@pytest.mark.learning
@pytest.mark.parametrize("name", [pytest.param("td3", marks=pytest.mark.slow), "sac"])  # td3: default-run budget
def test_learns_pendulum_quickly(name):
    """6e3 steps with 64x64 networks, 2 seeds: each far above a random policy (about -1200).

    Measured on 5 seed sets: TD3 seeds from -88 to -650 (TD3 is still climbing at this budget),
    SAC from -82 to -515; the bounds leave room for both."""
    out = _learning.run_named(name, "Pendulum-v1", QUICK, num_seeds=2, base=10)
    _learning.check(_learning.final_returns(out), every_seed_above=-1000, mean_above=-800)


@pytest.mark.slow
@pytest.mark.parametrize("name, mean_above, worst_above", [("sac", -200, -300), ("td3", -200, -300),
                                                            ("ddpg", -250, None)])
def test_learns_pendulum_at_2e4_steps_on_8_seeds(name, mean_above, worst_above):
    """The preset (one env, 256x256, update-to-data 1) at 2e4 steps, 8 seeds: issue #19's bar."""
    out = _learning.run_named(name, "Pendulum-v1", {"total_timesteps": 20_000}, num_seeds=8, base=20)
    _learning.check(_learning.final_returns(out), every_seed_above=worst_above, mean_above=mean_above)
