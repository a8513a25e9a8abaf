"""Presenting jobs to ops staff: the Django admin for the training models, the live dashboard
page, its charts, and the `watch` command. The top layer: it may import everything below."""
