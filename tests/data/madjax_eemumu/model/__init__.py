"""Model parameters of the hand-written madjax-layout package."""
