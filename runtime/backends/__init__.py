"""Inference backends behind one interface, chosen from the model file."""
