"""``python -m edgegen.cli``: the ``edgegen`` command (``torchrun ... -m edgegen.cli train``)."""

from edgegen.cli.main import main

main()
