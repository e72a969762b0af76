"""EM, VB and the NUTS posterior on the same Gaussian mixture: the pipeline, report and command.

In the order data flows through them:
- `datasets` — the named datasets and a user's CSV;
- `settings` — the run's settings and the report's constants (one home each);
- `checks` — the checks made on the data before any work;
- `limits` — the memory a run may plan for, and the counts (draws, replicates, ...) that fit;
- `em_fits` — both EM runs, their responsibilities and labels, in one component order;
- `em_uncertainty` — the reference EM run's standard errors, Wald and bootstrap intervals;
- `vb_fits` — VB from the reference EM run, its saved form and the summaries of its draws;
- `pipeline` — EM, VB, NUTS (and NUTS under VB's priors) into one `Results` value;
- `saved` — the saved results on disk: save, load (checked), copy;
- `comparison` — every number the report shows, as one JSON-ready dict from ArviZ's summary;
- `tables` — the report's tables built from that dict;
- `figures` — the figures and their captions;
- `pairs` — the pairs plot of every pair of coordinates, for D > 2;
- `render` — Markdown, self-contained HTML and the headline lines;
- `report` — the report folder written from a `Results` value;
- `selection`, `selection_report` — choosing K by every method's criterion, and its folder;
- `simulation`, `simulation_store`, `simulation_report` — the interval-coverage study on Dask,
  its resumable store of one file per replicate, and its report;
- `files` — safe writing (temporary path renamed into place, manifests);
- `interrupts` — SIGINT/SIGTERM handling for the command;
- `console` — the script's entry point: interrupts answered while the command is imported;
- `cli` — the `gmm-compare` command (also `python -m analysis`);
- `render_check` — a manual check that a report renders in a browser.
"""
