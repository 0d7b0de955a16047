"""Events: generation with exact per-event EFT dependence, detector simulation, observables, EventSet."""
