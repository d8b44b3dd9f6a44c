import sys

from tgrunner.cli import main

sys.exit(main())
