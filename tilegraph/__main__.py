import sys

from tilegraph.cli import main

sys.exit(main())
