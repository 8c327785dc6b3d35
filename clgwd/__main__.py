"""Allow ``python -m clgwd``."""

from clgwd.cli import main

raise SystemExit(main())
