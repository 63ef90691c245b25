"""The README's event catalogue is what partners read: it must list every event type, with
an example subject a partner can copy."""

from pathlib import Path

from envol_shared.contracts import PUBLISHED_BY
from envol_shared.events import event_name, registered_types

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_event_type_is_documented_with_an_example_subject():
    missing = [t for t in registered_types() if f"`{t}`" not in README]
    assert missing == []
    for type_ in registered_types():
        # A service's own events under its producer token, exactly as they are published.
        producer = f".{PUBLISHED_BY[type_]}" if type_ in PUBLISHED_BY else ""
        example = f"{producer}.{event_name(type_)}`"
        assert example in README, f"no example subject ending in {example} for {type_}"
