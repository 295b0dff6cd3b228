"""Transfer strategies: which layer groups train, when, and at which learning rate.

`groups.layer_groups(model)` cuts a model into blocks; `plan.plan_stages(...)` turns a strategy into
stages (pure functions of the config and the group count); `plan.StagedModel` applies a stage to a
model and its optimizer; `advisor` measures a dataset against a backbone and picks a strategy.
"""
