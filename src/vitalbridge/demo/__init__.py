"""``vitalbridge demo``: the whole readings-to-EHR path, driven and verified end to end (SPEC §7)."""
