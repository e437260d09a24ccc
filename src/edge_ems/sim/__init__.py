"""Simulators that look alive, so the whole system runs without hardware."""
