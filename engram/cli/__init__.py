"""The command line. Importing this package sets typer's help to plain click help before
typer is imported anywhere: typer's rich help imports rich.markdown and markdown-it on
every `--help` (~230 ms of a 300 ms cold-start budget). TYPER_USE_RICH=1 brings it back.
"""

import os

os.environ.setdefault("TYPER_USE_RICH", "0")
