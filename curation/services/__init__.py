"""Writes of curation data, one module per capability (imports, generation, review, datasets, tokens, demo).
Every UI view, API view, management command and task calls these functions."""
