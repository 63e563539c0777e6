"""Pure: facts, the run aggregate, state, fold, schedule. Imports only codec, errors, clock."""
