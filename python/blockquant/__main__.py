import sys

from blockquant.cli import main

sys.exit(main())
