"""``python -m edgegen.cli``: the ``edgegen`` command (``torchrun ... -m edgegen.cli train``)."""

from edgegen.cli.main import main

# Guarded: worker processes started with multiprocessing's spawn (a local dask cluster's)
# import the parent's main module, and must not run the command again.
if __name__ == "__main__":
    main()
