"""`python -m synood.cli`: the same as the `synood` command."""
from synood.cli import main

raise SystemExit(main())
