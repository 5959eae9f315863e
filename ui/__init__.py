"""Gradio front ends built around a DialogueManager; they render events and hold no business logic."""
