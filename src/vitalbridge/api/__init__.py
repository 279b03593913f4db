"""HTTP glue for the hub API: request dependencies, error conversion, health routes."""
