"""What the bot keeps: the key-value layer (Redis or memory), and the shared records on it."""
