"""`python -m mnistbench` is the same as the `mnistbench` console script."""

from mnistbench.cli import main

raise SystemExit(main())
