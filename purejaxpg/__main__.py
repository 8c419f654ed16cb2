"""``python -m purejaxpg``: the command line, `purejaxpg.cli` (one module per command there)."""

from purejaxpg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
