"""Population sync with FHIR Bulk Data ``$export`` (SPEC §4; Bulk Data Access IG v2).

``protocol`` speaks the wire (kick-off, status, file request, delete) through the EHR client;
``ndjson`` splits a byte stream into lines with their offsets; ``sync`` drives a job, importing
each file in batches and committing its position with each batch so a sync resumes where it
stopped; ``policy`` holds the polling and retry rules as data.
"""
