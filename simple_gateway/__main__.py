"""`python -m simple_gateway`: the same command line as `simple-gateway`."""

import sys

from simple_gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
