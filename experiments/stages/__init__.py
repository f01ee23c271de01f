"""The sweep's stages. Each takes plain inputs (the run context and earlier stages' outputs),
returns a plain record, and keeps its own resumable cache in the workdir, keyed by everything
it depends on, so a killed run resumes at any stage the same way:

  train     originals and retrained references      Orbax checkpoints per epoch
  unlearn   every original x a method's grid          Orbax checkpoint of the result
  evaluate  evaluator metrics of a model set          stage_cache entry
  select    hyperparameters per (goal, lambda)        pure function of evaluate's metrics
  regions   decision-region change of selected models stage_cache entry
  forgetting_score  the NeurIPS 2023 score, K models per side   checkpoints + stage_cache
  lira      shadow models and the per-example attack   checkpoints + stage_cache
  report    results.csv, figures, report.md           rewritten from the rows each run
"""
