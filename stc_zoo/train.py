"""``python -m stc_zoo.train``: the training command (the logic is the subpackage ``stc_zoo.training``)."""

from .training.cli import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
