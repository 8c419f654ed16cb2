"""purejaxpg: policy-gradient reinforcement learning in pure JAX."""
