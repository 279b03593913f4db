"""RPM billing (SPEC §13): enrollment episodes, qualifying days, the time log, CPT rules, reports."""
