"""Transfer strategies: which layer groups train, when, and at which learning rate.

`groups.layer_groups(model)` cuts a model into blocks; `stages.plan_stages(...)` turns a strategy into
stages (pure functions of the config and the group count); `stages.Staging` applies a stage to a
model and its optimizer; `advisor` measures a dataset against a backbone and picks a strategy; `auto`
plans fine-tuning from measured seconds; `probe` solves the head; `cuts` and `reuse` decide where a stage
starts and what frozen computation it reuses.
"""
