"""Minibatch shuffling: ``purejaxpg.shuffle.permutation`` against ``jax.random.permutation``.

    python benchmarks/shuffle_timing.py [--sizes 512 4096 10000] [--draws 2000] [--rounds 5]

Each variant draws ``--draws`` permutations inside one compiled ``lax.scan`` (every element of
each permutation is used, so nothing is optimised away); best of ``--rounds`` timed calls, in
microseconds per permutation. Writes ``benchmarks/results/shuffle_timing.json``. Never asserts
a time.
"""

from __future__ import annotations

import argparse
import time

import _common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 4096, 10_000])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from purejaxpg import shuffle

    def timed(permute, n):
        def body(total, key):
            perm = permute(key, n)
            return total + jnp.sum(perm * jnp.arange(n, dtype=jnp.int32)), None

        run = jax.jit(lambda keys: jax.lax.scan(body, jnp.int32(0), keys)[0])
        keys = jax.random.split(jax.random.PRNGKey(0), args.draws)
        run(keys).block_until_ready()
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            run(keys).block_until_ready()
            best = min(best, time.perf_counter() - start)
        return best / args.draws * 1e6

    rows = []
    for n in args.sizes:
        ours = timed(shuffle.permutation, n)
        theirs = timed(lambda key, n: jax.random.permutation(key, n), n)
        rows.append({"n": n, "purejaxpg_us": ours, "jax_us": theirs, "speedup": theirs / ours})
    print(_common.table(rows, [("n", "n", "d"), ("shuffle.permutation us", "purejaxpg_us", ".1f"),
                               ("jax.random.permutation us", "jax_us", ".1f"), ("speed-up", "speedup", ".1f")]))
    print("wrote", _common.write_json("shuffle_timing", {"rows": rows, "draws": args.draws}))


if __name__ == "__main__":
    main()
