"""Print roscoe's own dependencies and the extras the runner needs (service, mcp), one per line.

The builder installs these before copying roscoe's source, so a source change reuses the
dependency layers.
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)["project"]
extras = project.get("optional-dependencies", {})
for requirement in project.get("dependencies", []) + extras.get("service", []) + extras.get(
    "mcp", []
):
    print(requirement)
