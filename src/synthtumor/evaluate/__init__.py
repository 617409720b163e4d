"""Evaluation on real tumors: inference, Dice/NSD, lesion detection by size, reports."""
