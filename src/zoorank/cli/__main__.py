"""``python -m zoorank.cli``: the command line."""
from zoorank.cli import main

raise SystemExit(main())
