"""Training package: datasets, pretraining, LoRA fine-tuning and classifier fitting (see ARCHITECTURE.md)."""
