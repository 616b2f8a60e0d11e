"""Bolt: the app, its listeners (a click, /deployhq, the Home tab), and its Flask adapter."""
