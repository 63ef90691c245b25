"""The generator of the partners' catalogue (docs/catalogue/): run `python3 envol.py docs`.

schemas.py (JSON Schemas from the pydantic models), examples.py (one example per event and
query), answers.py (what the queries answer), reference.py (the clusters' configuration),
asyncapi.py (the AsyncAPI 3.0.0 documents), html.py (the offline page), __main__.py (writes
and checks the files). Dev-only: the services never import it.
"""
