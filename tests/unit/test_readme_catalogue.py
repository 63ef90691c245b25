"""The README's event catalogue is what partners read: it must list every event type."""

from pathlib import Path

from envol_shared.events import registered_types, subject_for

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_event_type_is_documented_with_an_example_subject():
    missing = [t for t in registered_types() if f"`{t}`" not in README]
    assert missing == []
    for type_ in registered_types():
        example = subject_for("<cluster>", "<producer>", type_).split(".", 3)[3]
        assert f".{example}`" in README, f"no example subject for {type_}"
