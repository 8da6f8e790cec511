"""Prefect flows: they only compose the stages in `tasks/`.  The campaign's bookkeeping that joins
the planner (`agent/`) and the library (`internflow/`) lives here with them: `ledger`, `preflight`,
`resume`."""
