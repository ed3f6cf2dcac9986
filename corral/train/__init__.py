"""Training: model, attention backends, FSDP2 wrapping, data loader, optimizer/schedule, checkpoints, loop."""
