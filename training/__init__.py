"""Ray Train training of DMWAN: configs, the per-worker loop, the driver and its entry point."""
