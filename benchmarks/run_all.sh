#!/usr/bin/env bash
# Every benchmark behind docs/results.md (about 95 minutes on the 2-core machine; run it on an
# otherwise idle machine, timings are wall-clock), then docs/results.md and its figures rebuilt
# from the JSON files.
set -euo pipefail
cd "$(dirname "$0")"
python learning.py --envs CartPole-v1 Pendulum-v1
python throughput.py algos --iterations 300 --rounds 11
python throughput.py seeds
python throughput.py seeds --cpu-devices "$(nproc)" --name throughput_seeds_cores
python throughput.py envs
python ppo_cartpole.py --seeds 1 8 --repeats 7 --cpu-devices "$(nproc)" --name ppo_cartpole_cores
python ppo_cartpole.py --seeds 1 8 --repeats 7 --pendulum
python ppo_cartpole.py --seeds 1 8 --repeats 7 --xla-cpu-threads 1 --name ppo_cartpole_xla1
python profile_ppo.py
python offpolicy_peers.py --rejax-as-configured
python learning.py --algos ppo trpo npg a2c reinforce reinforce_baseline ppo_kl mdpo grpo nac --envs Acrobot-v1 MountainCarContinuous-v0 Breakout-MinAtar
python learning.py --algos td3 --envs MountainCarContinuous-v0   # off-policy on MountainCar: TD3's preset (OU noise)
python make_results.py
