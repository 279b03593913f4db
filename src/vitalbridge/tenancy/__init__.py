"""Organizations, practices (one EHR tenant each), users, API tokens and who may see what."""
