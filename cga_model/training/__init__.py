"""Training: the loop (set-up/resume, one epoch, end of epoch) and distributed (DDP) facts."""
