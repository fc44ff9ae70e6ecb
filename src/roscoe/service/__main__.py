"""`python -m roscoe.service`: the runner image's command."""

from __future__ import annotations

import sys

from roscoe.service.main import main

sys.exit(main())
