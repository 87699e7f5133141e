"""Reports: scaling-law fits, figures and PDF documents from a study's MLflow runs."""
