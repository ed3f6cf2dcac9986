"""What runs on the host before and around torchrun: the checks before launch, the memory estimate,
the sizes that fit, the torchrun command and its agent. It reads train's config; train never imports it."""
