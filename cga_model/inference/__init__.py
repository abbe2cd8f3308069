"""Inference: sliding-window prediction of NIfTI cases from a checkpoint (never imports training)."""
