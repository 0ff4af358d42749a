"""`python -m mnistbench.studies > docs/studies.md`: print the generated page."""

import sys

from mnistbench.studies.markdown import studies_markdown

sys.stdout.write(studies_markdown())
