"""Weight edits (ROME; the edit log with exact undo) and CounterFact-style evaluation. Nothing here imports
widgets: every number the editor shows can be computed in a plain script."""
