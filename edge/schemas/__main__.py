import sys

from edge.schemas import main

sys.exit(main(sys.argv[1:]))
