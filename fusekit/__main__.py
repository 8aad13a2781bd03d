"""``python -m fusekit``: the command line, also for ``torchrun -m fusekit train ...``."""

from .cli import main

if __name__ == "__main__":
    main()
