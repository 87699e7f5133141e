"""Training: one Lightning loop for every architecture, bits per byte, MLflow tracking, exact resume."""
