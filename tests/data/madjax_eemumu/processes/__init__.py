"""Processes of the hand-written madjax-layout package."""
