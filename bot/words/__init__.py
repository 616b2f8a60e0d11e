"""The words every layer shares: what a card can be (states), what an action is (actions), and
what a button carries (buttons). Below everything that uses them; pure values."""
