"""Training: rendering, padding-free packing, the phase loop, checkpoints and resume, FSDP set-up."""
