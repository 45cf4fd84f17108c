"""`python -m wildwatch`: the same command as the `wildwatch` console script."""

from wildwatch.cli import main

main()
