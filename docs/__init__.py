"""Documentation generated from the code: `python -m docs.generate` (or `python3 envol.py docs`)
writes the partners' event catalogue into docs/catalogue/."""
