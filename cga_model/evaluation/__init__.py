"""Evaluation: BraTS region metrics, folder evaluation to CSV, overlay and distribution plots."""
