import sys

from coderl_jax.cli import main

sys.exit(main())
