"""The only code that talks to eventsourcing's persistence and to databases."""
