"""How the bot runs: gunicorn's settings and worker, the background pools, the connections made
from the settings, and the failpoints a test can kill a process at."""
