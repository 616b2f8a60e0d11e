"""How the bot runs: gunicorn's settings and worker, the background pools, and the connections made
from the settings."""
