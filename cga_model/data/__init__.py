"""Data: BraTS-layout reading (NIfTI), label schemes, the training dataset and synthetic cohorts."""
