"""The pruning schedule both `ppgedge prune` and `ppgedge run` default to (no heavy imports: the
CLI reads them at start-up). Chosen on validation subjects: candidate `gentle`, 8 steps with 6
epochs between them, won over 4 and 3 (docs/motion-benchmark.md)."""

PRUNE_STEPS = 8  # geometric steps to the budget: small cuts, each fine-tuned
PRUNE_FINETUNE_EPOCHS = 6  # after each step but the last
PRUNE_FINAL_EPOCHS = 20  # the last fine-tune, at the budget (candidate `longtune`)
