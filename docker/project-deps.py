"""Print roscoe's own dependencies (and its service extra) from pyproject.toml, one per line.

The builder installs these before copying roscoe's source, so a source change reuses the
dependency layers.
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)["project"]
for requirement in project.get("dependencies", []) + project.get("optional-dependencies", {}).get(
    "service", []
):
    print(requirement)
