"""A child's first line is read within a bound, and nothing after it is taken from the pipe."""

import subprocess
import sys
import time

from twload.serve.embedded import read_first_line


def test_a_silent_child_does_not_hang_the_reader():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        assert read_first_line(child.stdout, 0.5) == ""
        assert time.monotonic() - started < 20  # bounded (loosely: the point is that it returns)
    finally:
        child.kill()
        child.wait()


def test_only_the_first_line_is_taken():
    child = subprocess.Popen([sys.executable, "-c", "print('listening on x'); print('served 3')"],
                             stdout=subprocess.PIPE, text=True)
    assert read_first_line(child.stdout, 10) == "listening on x\n"
    rest, _ = child.communicate(timeout=10)
    assert rest == "served 3\n"
