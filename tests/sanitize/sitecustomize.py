"""For `make sanitize`: the ASan runtime is preloaded into Python processes only.

bin/python-asan preloads it and is sys.executable, so Python children get it again;
other programs started from here (pgrep, nginx, ss ...) must not: ASan in pgrep deadlocks.
"""

import os

if os.environ.get("TWLOAD_ASAN_RUNTIME"):
    os.environ.pop("LD_PRELOAD", None)
