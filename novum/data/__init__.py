"""Data: synthetic posed dataset, PASCAL3D+ (NeMo layout) loader, occluders, corruptions."""
