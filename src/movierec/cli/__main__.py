"""``python -m movierec.cli``: the same as the ``movierec`` command."""

from movierec.cli import main

if __name__ == "__main__":
    main()
